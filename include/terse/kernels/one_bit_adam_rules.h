#pragma once

#include <cmath>

#include "terse/core/macros.h"

namespace terse {

// The element-wise passes of 1-bit Adam's compression phase (terse/train/one_bit_adam.h), one
// formula for the CPU loop and the CUDA multi-tensor executor (bit-identical: no FMA contraction,
// IEEE division and square root on both).

// The new momentum into the send buffer, the stored m unchanged (a failed all-reduce leaves it):
// s0 = m (read), s1 = send = b1 m + (1 - b1) g. The parameter is not touched.
struct OneBitMomentumRule {
  static constexpr int kNumStates = 2;
  float beta1 = 0.9f, one_minus_beta1 = 0.1f;

  TERSE_HD TERSE_FORCEINLINE void operator()(float& /*p*/, float g, float& m, float& send,
                                             float& /*unused*/) const {
    send = beta1 * m + one_minus_beta1 * g;
  }
};

// The step with the all-reduced momentum and the frozen variance: s0 = m, s1 = v.
//   m = v > 0 ? m : 0   (the momentum mask: a coordinate that never had a gradient stays put)
//   p = p * decay + neg_step_size * (m / (sqrt(v) / c2_sqrt + eps))
struct OneBitAdamUpdateRule {
  static constexpr int kNumStates = 2;
  float decay = 1, neg_step_size = 0, c2_sqrt = 1, eps = 1e-8f;

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float /*g*/, float& m, float& v,
                                             float& /*unused*/) const {
    m = v > 0.0f ? m : 0.0f;
    const float pk = p * decay;
    const float den = std::sqrt(v) / c2_sqrt + eps;
    p = pk + neg_step_size * (m / den);
  }
};

}  // namespace terse

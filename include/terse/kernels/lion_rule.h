#pragma once

#include <cmath>
#include <cstdint>

#include "terse/core/macros.h"

namespace terse {

// Lion, one element (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms",
// Algorithm 2; spec optimizers.md §8; lucidrains/lion-pytorch `update_fn`, google/automl lion/):
//   p *= 1 - lr * weight_decay              decoupled, applied to p before the update
//   c = beta1 * m + (1 - beta1) * g
//   p -= lr * sign(c)                        sign(0) = 0; a NaN in c propagates to p
//   m = beta2 * m + (1 - beta2) * g          momentum updated after, with beta2
// The official code matches the paper. State: s0 = exp_avg; s1, s2 unused scratch.
struct LionRule {
  static constexpr int kNumStates = 1;

  float beta1 = 0.9f, one_minus_beta1 = 0.1f;
  float beta2 = 0.99f, one_minus_beta2 = 0.01f;
  float decay = 1;  // 1 - lr * weight_decay
  float neg_lr = 0;

  // `weight_decay` is the effective one (lucidrains' decoupled_weight_decay divides it by the
  // initial lr before this). Scalars in double on the host; `step` is unused (no bias
  // correction) but kept so every Rule is built the same way.
  static LionRule for_step(double lr, double beta1, double beta2, double weight_decay,
                           int64_t /*step*/) {
    LionRule r;
    r.beta1 = static_cast<float>(beta1);
    r.one_minus_beta1 = static_cast<float>(1.0 - beta1);
    r.beta2 = static_cast<float>(beta2);
    r.one_minus_beta2 = static_cast<float>(1.0 - beta2);
    r.decay = static_cast<float>(1.0 - lr * weight_decay);
    r.neg_lr = static_cast<float>(-lr);
    return r;
  }

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& s0, float& /*s1*/,
                                             float& /*s2*/) const {
    p = p * decay;
    const float c = beta1 * s0 + one_minus_beta1 * g;
    // sign(c), or c itself when 0 or NaN, with one select: from the two nested `?:` GCC sank the
    // product below into branches that only AVX-512 masks if-convert (a product may trap); on
    // AVX2 and baseline the loop stayed scalar, mispredicting on random signs.
    const float one = std::copysign(1.0f, c);
    const float sign = std::fabs(c) > 0.0f ? one : c;
    p = p + neg_lr * sign;
    s0 = beta2 * s0 + one_minus_beta2 * g;
  }
};

}  // namespace terse

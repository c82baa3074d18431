#pragma once

#include <cmath>

#include "terse/core/macros.h"

namespace terse {

// The element-wise passes of 1-bit LAMB (terse/train/one_bit_lamb.h), one formula for the CPU loop
// and the CUDA multi-tensor executor (bit-identical: no FMA contraction, IEEE division and square
// root on both). The per-tensor norms and maxima between them are reductions over the buffers
// these passes write (terse/kernels/fixed_order_sum.h, cuda_flat_reduce.h).

// The per-group float constants of one step.
struct OneBitLambConsts {
  float b1 = 0.9f, omb1 = 0.1f, b2 = 0.999f, omb2 = 0.001f, wd = 0, eps = 1e-8f;

  // u = m / (sqrt(v) + eps) + wd p.
  TERSE_HD TERSE_FORCEINLINE float update(float p, float m, float v) const {
    return m / (std::sqrt(v) + eps) + wd * p;
  }
};

// A warm-up step's moments and update (g averaged densely): s0 = m, s1 = v, s2 = u (written, for
// ||u||). m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  u as above. p unchanged.
struct OneBitLambWarmupRule {
  static constexpr int kNumStates = 3;
  OneBitLambConsts c;

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& m, float& v,
                                             float& u) const {
    m = c.b1 * m + c.omb1 * g;
    v = c.b2 * v + c.omb2 * (g * g);
    u = c.update(p, m, v);
  }
};

// Every step's last pass: p = p + step_size u (step_size = -lr * the tensor's trust ratio), u from
// the current m, v (s0, s1; read).
struct OneBitLambUpdateRule {
  static constexpr int kNumStates = 2;
  OneBitLambConsts c;
  float step_size = 0;

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float /*g*/, float& m, float& v,
                                             float& /*unused*/) const {
    p = p + step_size * c.update(p, m, v);
  }
};

// The scaled new momentum into the send buffer (m unchanged: a failed all-reduce leaves it):
// s0 = m (read), s1 = send = (b1 m + (1 - b1) g) * scaling. p unchanged.
struct OneBitLambMomentumRule {
  static constexpr int kNumStates = 2;
  float b1 = 0.9f, omb1 = 0.1f, scaling = 1;

  TERSE_HD TERSE_FORCEINLINE void operator()(float& /*p*/, float g, float& m, float& send,
                                             float& /*unused*/) const {
    send = (b1 * m + omb1 * g) * scaling;
  }
};

// After the all-reduce: s0 = m, s1 = v (read), s2 = v_fresh, s3 = the all-reduced send buffer in,
// the tensor's ratio out (for its max).
//   m_new = v > 0 ? send / scaling : 0   (the momentum mask: no gradient during the warm-up)
//   g~ = (m_new - b1 m) / (1 - b1);  v_fresh = b2 v_fresh + (1 - b2) g~^2;  m = m_new
//   ratio = (sqrt(v) + eps) / (sqrt(v_fresh) + eps)
struct OneBitLambFreshRule {
  static constexpr int kNumStates = 4;
  OneBitLambConsts c;
  float scaling = 1;

  TERSE_HD TERSE_FORCEINLINE void operator()(float& /*p*/, float /*g*/, float& m, float& v,
                                             float& vf, float& send_ratio) const {
    const float m_prev = m;
    const float m_new = v > 0.0f ? send_ratio / scaling : 0.0f;
    const float g_rec = (m_new - m_prev * c.b1) / c.omb1;
    vf = c.b2 * vf + c.omb2 * (g_rec * g_rec);
    m = m_new;
    const float den = std::sqrt(v) + c.eps;
    send_ratio = den / (std::sqrt(vf) + c.eps);
  }
};

// For the weight-decay factor: s0 = m, s1 = v (read), s2 = prelim = m / (sqrt(v) + eps), s3 = u =
// prelim + wd p (both written, for their norms). p unchanged.
struct OneBitLambPrelimRule {
  static constexpr int kNumStates = 4;
  OneBitLambConsts c;

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float /*g*/, float& m, float& v,
                                             float& prelim, float& u) const {
    const float den = std::sqrt(v) + c.eps;
    prelim = m / den;
    u = prelim + c.wd * p;
  }
};

}  // namespace terse

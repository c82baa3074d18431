#pragma once

#include <cmath>
#include <cstdint>

#include "terse/core/macros.h"

namespace terse {

// EXAdam, one element (Adly 2024, "EXAdam: The Power of Adaptive Cross-Moments",
// arXiv 2412.20302; spec optimizers.md §9), following the official AhmedMostafa16/EXAdam
// `exadam.py` `EXAdam.step`:
//   p *= 1 - lr * weight_decay                    decoupled, before the moments
//   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
//   d1 = 1 + beta2^t * v / (v + eps);  d2 = 1 + beta1^t * m^2 / (m^2 + eps)
//   m~ = m / bc1 * d1;  v~ = v / bc2 * d2;  g~ = g / bc1 * d1
//   p -= lr * (m~ + g~) / (sqrt(v~) + eps)
// Where the code differs from the paper: the first commit scaled lr by ln(sqrt(2) * sqrt(t+1));
// the current code (the reference) has no step-size schedule. States: s0 = m, s1 = v.
struct ExAdamRule {
  static constexpr int kNumStates = 2;

  float beta1 = 0.9f, one_minus_beta1 = 0.1f;
  float beta2 = 0.999f, one_minus_beta2 = 0.001f;
  float beta1_t = 0.9f, beta2_t = 0.999f;  // beta^t, the weights of the debiasing terms
  float inv_bc1 = 1, inv_bc2 = 1;          // 1 / (1 - beta^t)
  float eps = 1e-8f;
  float decay = 1;  // 1 - lr * weight_decay
  float neg_lr = 0;

  // Powers and bias corrections in double on the host, once per step; `step` is 1-based.
  static ExAdamRule for_step(double lr, double beta1, double beta2, double eps, double weight_decay,
                             int64_t step) {
    ExAdamRule r;
    const double t = static_cast<double>(step);
    const double b1t = std::pow(beta1, t);
    const double b2t = std::pow(beta2, t);
    r.beta1 = static_cast<float>(beta1);
    r.one_minus_beta1 = static_cast<float>(1.0 - beta1);
    r.beta2 = static_cast<float>(beta2);
    r.one_minus_beta2 = static_cast<float>(1.0 - beta2);
    r.beta1_t = static_cast<float>(b1t);
    r.beta2_t = static_cast<float>(b2t);
    r.inv_bc1 = static_cast<float>(1.0 / (1.0 - b1t));
    r.inv_bc2 = static_cast<float>(1.0 / (1.0 - b2t));
    r.eps = static_cast<float>(eps);
    r.decay = static_cast<float>(1.0 - lr * weight_decay);
    r.neg_lr = static_cast<float>(-lr);
    return r;
  }

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& s0, float& s1,
                                             float& /*s2*/) const {
    p = p * decay;
    const float m = beta1 * s0 + one_minus_beta1 * g;
    const float v = beta2 * s1 + one_minus_beta2 * (g * g);
    s0 = m;
    s1 = v;
    const float m2 = m * m;
    const float d1 = 1.0f + (v / (v + eps)) * beta2_t;
    const float d2 = 1.0f + (m2 / (m2 + eps)) * beta1_t;
    const float m_tilde = m * inv_bc1 * d1;
    const float v_tilde = v * inv_bc2 * d2;
    const float g_tilde = g * inv_bc1 * d1;
    p = p + neg_lr * (m_tilde + g_tilde) / (std::sqrt(v_tilde) + eps);
  }
};

}  // namespace terse

#pragma once

#include <cmath>
#include <cstdint>

#include "terse/core/macros.h"

namespace terse {

// FRUGAL's AdamW (frugal/adamw.py of the official code, HF-style eps; spec optimizers.md §13),
// one element, for the state-full subspace and for the parameters FRUGAL does not project:
//   p *= 1 - lr * weight_decay
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   p += -(lr_a / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)        (bc = 1 when !correct_bias)
// States: s0 = exp_avg, s1 = exp_avg_sq. Unlike AdamRule it never reads p into g (no coupled
// decay term), so a NaN parameter does not reach the moments.
struct FrugalAdamRule {
  static constexpr int kNumStates = 2;

  float beta1 = 0.9f, one_minus_beta1 = 0.1f;
  float beta2 = 0.999f, one_minus_beta2 = 0.001f;
  float bc2_sqrt = 1;
  float eps = 1e-8f;
  float neg_step = 0;  // -lr_a / bc1
  float decay = 1;     // 1 - lr * weight_decay (the group's lr, not lr_a)

  // Scalars in double on the host; `step` counts the steps since the moments were zeroed.
  static FrugalAdamRule for_step(double lr_a, double beta1, double beta2, double eps,
                                 bool correct_bias, float decay, int64_t step) {
    FrugalAdamRule a;
    a.beta1 = static_cast<float>(beta1);
    a.one_minus_beta1 = static_cast<float>(1.0 - beta1);
    a.beta2 = static_cast<float>(beta2);
    a.one_minus_beta2 = static_cast<float>(1.0 - beta2);
    a.eps = static_cast<float>(eps);
    double step_size = lr_a;
    if (correct_bias) {
      const auto t = static_cast<double>(step);
      step_size = lr_a / (1.0 - std::pow(beta1, t));
      a.bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(beta2, t)));
    }
    a.neg_step = static_cast<float>(-step_size);
    a.decay = decay;
    return a;
  }

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& s0, float& s1,
                                             float& /*s2*/) const {
    s0 = s0 * beta1 + one_minus_beta1 * g;
    s1 = s1 * beta2 + one_minus_beta2 * (g * g);
    const float den = std::sqrt(s1) / bc2_sqrt + eps;
    p = p * decay + (s0 / den) * neg_step;
  }
};

}  // namespace terse

#pragma once

#include <cmath>
#include <cstdint>

#include "terse/core/macros.h"
#include "terse/kernels/projection_scalars.h"

namespace terse {

// AdamP, the element-wise part (Heo et al., ICLR 2021, "AdamP: Slowing Down the Slowdown for
// Momentum Optimizers on Scale-invariant Weights", Algorithm 2; spec optimizers.md §5),
// following the official clovaai/AdamP adamp/adamp.py `AdamP.step`:
//   m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g * g
//   den = sqrt(v) / sqrt(bc2) + eps
//   perturb = kNesterov ? (beta1 * m + (1 - beta1) * g) / den : m / den
//   [tensors of ndim > 1: perturb projected off theta, wd_ratio on the decay: ProjectionScalars]
//   theta *= 1 - lr * weight_decay * wd_ratio         decoupled, before the step
//   theta -= lr / bc1 * perturb
// The paper's projection uses the cosine without abs() (clovaai/AdamP#6); the code's |cos| is
// the one used. States: s0 = exp_avg, s1 = exp_avg_sq.
template <bool kNesterov>
struct AdamPRule {
  static constexpr int kNumStates = 2;

  float beta1 = 0.9f, one_minus_beta1 = 0.1f;
  float beta2 = 0.999f, one_minus_beta2 = 0.001f;
  float bias_correction2_sqrt = 1;
  float eps = 1e-8f;
  ProjectionScalars proj;

  // Bias corrections in double on the host, once per step; `step` is 1-based.
  static AdamPRule for_step(double lr, double beta1, double beta2, double eps, double weight_decay,
                            double delta, double wd_ratio, int64_t step) {
    AdamPRule r;
    const double t = static_cast<double>(step);
    const double bc1 = 1.0 - std::pow(beta1, t);
    const double bc2 = 1.0 - std::pow(beta2, t);
    r.beta1 = static_cast<float>(beta1);
    r.one_minus_beta1 = static_cast<float>(1.0 - beta1);
    r.beta2 = static_cast<float>(beta2);
    r.one_minus_beta2 = static_cast<float>(1.0 - beta2);
    r.bias_correction2_sqrt = static_cast<float>(std::sqrt(bc2));
    r.eps = static_cast<float>(eps);
    r.proj = ProjectionScalars::make(-lr / bc1, lr, weight_decay, 1.0, wd_ratio, delta, eps);
    return r;
  }

  // Advances the moments and returns the (unprojected) perturbation.
  TERSE_HD TERSE_FORCEINLINE float update(float g, float& s0, float& s1) const {
    s0 = beta1 * s0 + one_minus_beta1 * g;
    s1 = beta2 * s1 + one_minus_beta2 * (g * g);
    return perturb(g, s0, s1);
  }

  // The perturbation from the advanced moments: the second pass recomputes it, bit-identical.
  TERSE_HD TERSE_FORCEINLINE float perturb(float g, float m, float v) const {
    const float den = std::sqrt(v) / bias_correction2_sqrt + eps;
    if constexpr (kNesterov) return (beta1 * m + one_minus_beta1 * g) / den;
    (void)g;
    return m / den;
  }
};

}  // namespace terse

#pragma once

#include <cmath>
#include <cstdint>

#include "terse/core/macros.h"

namespace terse {

// torch.optim.Adam / AdamW, one element (spec optimizers.md §3, torch 1.13 `_single_tensor_adam`
// and `_single_tensor_adamw`):
//   g = maximize ? -g : g
//   Adam:  g += weight_decay * p            AdamW: p *= 1 - lr * weight_decay
//   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g
//   kAmsgrad: vmax = max(vmax, v) over the RAW v (torch's code; its docs show the max of v_hat)
//   p -= (lr / bc1) * m / (sqrt(v or vmax) / sqrt(bc2) + eps)
// States: s0 = exp_avg, s1 = exp_avg_sq, s2 = max_exp_avg_sq (amsgrad only, else scratch).
template <bool kAmsgrad>
struct AdamRule {
  static constexpr int kNumStates = kAmsgrad ? 3 : 2;

  float beta1 = 0.9f, one_minus_beta1 = 0.1f;
  float beta2 = 0.999f, one_minus_beta2 = 0.001f;
  float l2 = 0;             // Adam's coupled weight decay (0 for AdamW)
  float decay = 1;          // AdamW's 1 - lr * weight_decay (1 for Adam)
  float neg_step_size = 0;  // -lr / bc1
  float bias_correction2_sqrt = 1;
  float eps = 1e-8f;
  float grad_sign = 1;  // -1 when maximize

  // Bias corrections in double on the host, once per step; `step` is 1-based.
  static AdamRule for_step(double lr, double beta1, double beta2, double eps, double weight_decay,
                           bool decoupled, bool maximize, int64_t step) {
    AdamRule r;
    const double t = static_cast<double>(step);
    const double bc1 = 1.0 - std::pow(beta1, t);
    const double bc2 = 1.0 - std::pow(beta2, t);
    r.beta1 = static_cast<float>(beta1);
    r.one_minus_beta1 = static_cast<float>(1.0 - beta1);
    r.beta2 = static_cast<float>(beta2);
    r.one_minus_beta2 = static_cast<float>(1.0 - beta2);
    r.l2 = decoupled ? 0.0f : static_cast<float>(weight_decay);
    r.decay = decoupled ? static_cast<float>(1.0 - lr * weight_decay) : 1.0f;
    r.neg_step_size = static_cast<float>(-lr / bc1);
    r.bias_correction2_sqrt = static_cast<float>(std::sqrt(bc2));
    r.eps = static_cast<float>(eps);
    r.grad_sign = maximize ? -1.0f : 1.0f;
    return r;
  }

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& s0, float& s1,
                                             float& s2) const {
    g = grad_sign * g + l2 * p;
    p = p * decay;
    const float m = beta1 * s0 + one_minus_beta1 * g;
    const float v = beta2 * s1 + one_minus_beta2 * (g * g);
    s0 = m;
    s1 = v;
    float vd = v;
    if constexpr (kAmsgrad) {
      vd = s2 > v ? s2 : v;  // torch.maximum: a NaN in v propagates
      s2 = vd;
    } else {
      (void)s2;
    }
    const float den = std::sqrt(vd) / bias_correction2_sqrt + eps;
    p = p + neg_step_size * (m / den);
  }
};

}  // namespace terse

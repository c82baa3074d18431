#pragma once

#include <cmath>
#include <cstdint>

#include "terse/core/macros.h"

namespace terse {

// AdaBelief, one element (Zhuang et al., NeurIPS 2020, "AdaBelief Optimizer: Adapting Stepsizes
// by the Belief in Observed Gradients", Algorithm 2; spec optimizers.md §7), following the
// official adabelief_pytorch 0.2.1 `AdaBelief.step`:
//   weight_decouple: p *= fixed_decay ? 1 - wd : 1 - lr * wd     else g += wd * p
//   m = beta1 * m + (1 - beta1) * g
//   s = beta2 * s + (1 - beta2) * (g - m)^2 + eps     residual against the UPDATED m; eps goes
//                                                     into the state every step (paper and code)
//   kAmsgrad: smax = max(smax, s)
//   rectify = false: p -= lr / bc1 * m / (sqrt(s or smax) / sqrt(bc2) + eps)
//   rectify = true (RAdam; rho_t from for_step):
//     rho_t >= 5: p -= lr * r_t / bc1 * m / (sqrt(s) + eps)   no sqrt(bc2), and s even with
//                                                             amsgrad (the code's choice)
//     else:       p -= lr / bc1 * m if degenerated_to_sgd, else p is left as it is
// Where the code differs from the paper: rectification and decoupled decay are additions (the
// paper's Algorithm 2 is rectify=false, weight_decouple=false); the rectified branch drops
// sqrt(bc2) and ignores smax. The official coupled decay also writes g += wd * p into p.grad;
// terse leaves the gradient untouched.
// States: s0 = exp_avg, s1 = exp_avg_var, s2 = max_exp_avg_var (amsgrad only, else scratch).
template <bool kAmsgrad>
struct AdaBeliefRule {
  static constexpr int kNumStates = kAmsgrad ? 3 : 2;

  float beta1 = 0.9f, one_minus_beta1 = 0.1f;
  float beta2 = 0.999f, one_minus_beta2 = 0.001f;
  float l2 = 0;     // coupled weight decay (0 when decoupled)
  float decay = 1;  // decoupled 1 - lr * wd or 1 - wd (1 when coupled)
  float eps = 1e-16f;
  float bias_correction2_sqrt = 1;  // 1 in the rectified branch
  float neg_step_size = 0;
  bool adaptive = true;       // divide by the denominator (false: the SGD fallback)
  bool den_from_max = false;  // amsgrad outside the rectified branch
  bool apply = true;          // false: rho_t < 5 without degenerated_to_sgd, no update

  // Bias corrections and the RAdam terms in double on the host, once per step, with the
  // official code's operation order; `step` is 1-based.
  static AdaBeliefRule for_step(double lr, double beta1, double beta2, double eps,
                                double weight_decay, bool weight_decouple, bool fixed_decay,
                                bool rectify, bool degenerated_to_sgd, int64_t step) {
    AdaBeliefRule r;
    const double t = static_cast<double>(step);
    const double bc1 = 1.0 - std::pow(beta1, t);
    const double beta2_t = std::pow(beta2, t);
    const double bc2 = 1.0 - beta2_t;
    r.beta1 = static_cast<float>(beta1);
    r.one_minus_beta1 = static_cast<float>(1.0 - beta1);
    r.beta2 = static_cast<float>(beta2);
    r.one_minus_beta2 = static_cast<float>(1.0 - beta2);
    r.l2 = weight_decouple ? 0.0f : static_cast<float>(weight_decay);
    r.decay = !weight_decouple
                  ? 1.0f
                  : static_cast<float>(fixed_decay ? 1.0 - weight_decay : 1.0 - lr * weight_decay);
    r.eps = static_cast<float>(eps);
    r.den_from_max = kAmsgrad;
    if (!rectify) {
      r.bias_correction2_sqrt = static_cast<float>(std::sqrt(bc2));
      r.neg_step_size = static_cast<float>(-(lr / bc1));
      return r;
    }
    const double rho_inf = 2.0 / (1.0 - beta2) - 1.0;
    const double rho_t = rho_inf - 2.0 * t * beta2_t / (1.0 - beta2_t);
    r.den_from_max = false;
    if (rho_t >= 5) {
      const double step_size = std::sqrt((1.0 - beta2_t) * (rho_t - 4.0) / (rho_inf - 4.0) *
                                         (rho_t - 2.0) / rho_t * rho_inf / (rho_inf - 2.0)) /
                               bc1;
      r.neg_step_size = static_cast<float>(-step_size * lr);
    } else {
      r.adaptive = false;
      r.apply = degenerated_to_sgd;
      r.neg_step_size = static_cast<float>(-(1.0 / bc1) * lr);
    }
    return r;
  }

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& s0, float& s1,
                                             float& s2) const {
    g = g + l2 * p;
    p = p * decay;
    const float m = beta1 * s0 + one_minus_beta1 * g;
    const float res = g - m;
    const float s = (beta2 * s1 + one_minus_beta2 * (res * res)) + eps;
    s0 = m;
    s1 = s;
    float sd = s;
    if constexpr (kAmsgrad) {
      const float smax = s2 > s ? s2 : s;  // torch.max: a NaN in s propagates
      s2 = smax;
      sd = den_from_max ? smax : s;
    } else {
      (void)s2;
    }
    const float den = std::sqrt(sd) / bias_correction2_sqrt + eps;
    const float update = adaptive ? m / den : m;
    p = apply ? p + neg_step_size * update : p;
  }
};

}  // namespace terse

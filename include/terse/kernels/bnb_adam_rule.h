#pragma once

#include <cmath>
#include <cstdint>

#include "terse/core/macros.h"
#include "terse/kernels/ieee_math.h"

namespace terse {

// bitsandbytes' Adam, one element (Adam8bit / AdamW8bit and their 32-bit path for small tensors;
// spec optimizers.md §10, bnb csrc `kOptimizerStatic8bit2StateBlockwise`, `kOptimizer32bit2State`):
//   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g
//   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
//   p *= 1 - lr * weight_decay                decoupled, AFTER the step, for Adam8bit too
// bnb writes the step as -lr*sqrt(bc2)/bc1 * m / (sqrt(v) + sqrt(bc2)*eps), equal in exact
// arithmetic; terse keeps torch's form (AdamRule's), so with weight_decay = 0 this rule gives
// the bits of terse's `adam`. torch's AdamW decays before the step instead (bnb issue #2010).
// States: s0 = m (state1), s1 = v (state2); s2 unused scratch.
struct BnbAdamRule {
  static constexpr int kNumStates = 2;

  float beta1 = 0.9f, one_minus_beta1 = 0.1f;
  float beta2 = 0.999f, one_minus_beta2 = 0.001f;
  float neg_step_size = 0;  // -lr / bc1
  float bias_correction2_sqrt = 1;
  float eps = 1e-8f;
  float decay = 1;  // 1 - lr * weight_decay

  // Scalars in double on the host, once per step; `step` is 1-based.
  static BnbAdamRule for_step(double lr, double beta1, double beta2, double eps,
                              double weight_decay, int64_t step) {
    BnbAdamRule r;
    const double t = static_cast<double>(step);
    r.beta1 = static_cast<float>(beta1);
    r.one_minus_beta1 = static_cast<float>(1.0 - beta1);
    r.beta2 = static_cast<float>(beta2);
    r.one_minus_beta2 = static_cast<float>(1.0 - beta2);
    r.neg_step_size = static_cast<float>(-lr / (1.0 - std::pow(beta1, t)));
    r.bias_correction2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(beta2, t)));
    r.eps = static_cast<float>(eps);
    r.decay = static_cast<float>(1.0 - lr * weight_decay);
    return r;
  }

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& s0, float& s1,
                                             float& /*s2*/) const {
    IeeeMath math;
    apply(math, p, g, s0, s1);
  }

  // The element with the division and square root of `math` (ieee_math.h): the GPU's 8-bit step
  // passes exact forms without the compiler's per-call branches.
  template <typename Math>
  TERSE_HD TERSE_FORCEINLINE void apply(Math& math, float& p, float g, float& s0, float& s1) const {
    const float m = beta1 * s0 + one_minus_beta1 * g;
    const float v = beta2 * s1 + one_minus_beta2 * (g * g);
    s0 = m;
    s1 = v;
    const float den = math.sqrt_div(v, bias_correction2_sqrt) + eps;
    p = (p + neg_step_size * math.div(m, den)) * decay;
  }
};

}  // namespace terse

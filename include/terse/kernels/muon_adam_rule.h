#pragma once

#include <cmath>
#include <cstdint>

#include "terse/core/macros.h"
#include "terse/kernels/torch_lerp.h"

namespace terse {

// The internal Adam that Muon's reference gives the parameters it does not orthogonalise
// (biases, gains, embeddings; KellerJordan/Muon `adam_update` of `MuonWithAuxAdam`), one
// element:
//   m = lerp(m, g, 1 - beta1);  v = lerp(v, g^2, 1 - beta2)
//   p = p * (1 - lr * weight_decay) - lr * (m / bc1) / (sqrt(v / bc2) + eps)
// States: s0 = exp_avg, s1 = exp_avg_sq. It differs from AdamRule in its lerp moments and where
// the bias corrections divide, so it is its own Rule.
struct MuonAdamRule {
  static constexpr int kNumStates = 2;

  float one_minus_beta1 = 0.1f, one_minus_beta2 = 0.05f;
  float bc1 = 1, bc2 = 1;
  float eps = 1e-10f;
  float decay = 1;  // 1 - lr * weight_decay
  float neg_lr = 0;

  // Bias corrections in double on the host, once per step; `step` is 1-based.
  static MuonAdamRule for_step(double lr, double beta1, double beta2, double eps,
                               double weight_decay, int64_t step) {
    MuonAdamRule r;
    const auto t = static_cast<double>(step);
    r.one_minus_beta1 = static_cast<float>(1.0 - beta1);
    r.one_minus_beta2 = static_cast<float>(1.0 - beta2);
    r.bc1 = static_cast<float>(1.0 - std::pow(beta1, t));
    r.bc2 = static_cast<float>(1.0 - std::pow(beta2, t));
    r.eps = static_cast<float>(eps);
    r.decay = static_cast<float>(1.0 - lr * weight_decay);
    r.neg_lr = static_cast<float>(-lr);
    return r;
  }

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& s0, float& s1,
                                             float& /*s2*/) const {
    s0 = torch_lerp(s0, g, one_minus_beta1);
    s1 = torch_lerp(s1, g * g, one_minus_beta2);
    const float upd = (s0 / bc1) / (std::sqrt(s1 / bc2) + eps);
    p = p * decay + neg_lr * upd;
  }
};

}  // namespace terse

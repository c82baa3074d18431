#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "terse/core/macros.h"

namespace terse {

// Adan, one element (Xie et al., TPAMI 2024, "Adan: Adaptive Nesterov Momentum Algorithm for
// Faster Optimizing Deep Models", arXiv 2208.06677; spec optimizers.md §6), following the
// official sail-sg/Adan `_single_tensor_adan` (betas are the code's, i.e. 1 - the paper's):
//   g *= clip                                  global-norm clip (1 without max_grad_norm)
//   first step (and first after a restart): m = n = diff_avg = 0, prev = g  (so d = 0)
//   d = g - prev
//   m = beta1 * m + (1 - beta1) * g
//   diff_avg = beta2 * diff_avg + (1 - beta2) * d
//   n = beta3 * n + (1 - beta3) * (g + beta2 * d)^2
//   den = sqrt(n) / sqrt(bc3) + eps
//   no_prox = false: p = (p - lr / bc1 * m / den - lr * beta2 / bc2 * diff_avg / den)
//                        / (1 + lr * wd)                                   proximal decay
//   no_prox = true:  p = p * (1 - lr * wd) - (the same two terms)
//   prev = g
// bc_k = 1 - beta_k^t with t the step since the last restart. The official code writes the
// clipped g back into p.grad; terse leaves the gradient untouched. Where the code differs from
// the paper: the paper starts m and n from the first gradient without bias correction; the code
// zero-initialises with bias correction (as here).
// States (official order): s0 = exp_avg, s1 = exp_avg_sq, s2 = exp_avg_diff,
// s3 = neg_pre_grad (-prev).
struct AdanRule {
  static constexpr int kNumStates = 4;

  float beta1 = 0.98f, one_minus_beta1 = 0.02f;
  float beta2 = 0.92f, one_minus_beta2 = 0.08f;
  float beta3 = 0.99f, one_minus_beta3 = 0.01f;
  float clip = 1;                   // global-norm clip coefficient of this step
  float bias_correction3_sqrt = 1;  // sqrt(1 - beta3^t)
  float eps = 1e-8f;
  float neg_step_size = 0;       // -lr / bc1
  float neg_step_size_diff = 0;  // -lr * beta2 / bc2
  float decay = 1;               // 1 - lr * wd (no_prox), else 1
  float prox = 1;                // 1 + lr * wd (proximal), else 1
  // All ones, or 0 on the first step since the start or a restart, where the states start afresh.
  // A bit mask rather than a bool: GCC does not vectorise the loop with four selects on a bool,
  // and masking clears even an inf or NaN state, as the official zeroing does.
  uint32_t keep = ~0u;

  // Scalars in double on the host with the official operation order; `step` is 1-based and
  // counts from the last restart.
  static AdanRule for_step(double lr, double beta1, double beta2, double beta3, double eps,
                           double weight_decay, bool no_prox, double clip, int64_t step) {
    AdanRule r;
    const double t = static_cast<double>(step);
    const double bc1 = 1.0 - std::pow(beta1, t);
    const double bc2 = 1.0 - std::pow(beta2, t);
    const double bc3 = 1.0 - std::pow(beta3, t);
    r.beta1 = static_cast<float>(beta1);
    r.one_minus_beta1 = static_cast<float>(1.0 - beta1);
    r.beta2 = static_cast<float>(beta2);
    r.one_minus_beta2 = static_cast<float>(1.0 - beta2);
    r.beta3 = static_cast<float>(beta3);
    r.one_minus_beta3 = static_cast<float>(1.0 - beta3);
    r.clip = static_cast<float>(clip);
    r.bias_correction3_sqrt = static_cast<float>(std::sqrt(bc3));
    r.eps = static_cast<float>(eps);
    r.neg_step_size = static_cast<float>(-(lr / bc1));
    r.neg_step_size_diff = static_cast<float>(-(lr * beta2 / bc2));
    r.decay = no_prox ? static_cast<float>(1.0 - lr * weight_decay) : 1.0f;
    r.prox = no_prox ? 1.0f : static_cast<float>(1.0 + lr * weight_decay);
    r.keep = step == 1 ? 0u : ~0u;
    return r;
  }

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& s0, float& s1, float& s2,
                                             float& s3) const {
    g = g * clip;
    const float neg_prev = masked(s3, keep) + masked(-g, ~keep);  // -g after a restart
    const float d = neg_prev + g;
    const float m = beta1 * masked(s0, keep) + one_minus_beta1 * g;
    const float diff_avg = beta2 * masked(s2, keep) + one_minus_beta2 * d;
    const float u = d * beta2 + g;
    const float n = beta3 * masked(s1, keep) + one_minus_beta3 * u * u;
    const float den = std::sqrt(n) / bias_correction3_sqrt + eps;
    p = p * decay;
    p = p + neg_step_size * (m / den);
    p = p + neg_step_size_diff * (diff_avg / den);
    p = p / prox;
    s0 = m;
    s1 = n;
    s2 = diff_avg;
    s3 = -g;
  }

  // x with its bits ANDed with `mask`: x itself or +0.
  TERSE_HD static TERSE_FORCEINLINE float masked(float x, uint32_t mask) {
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    bits &= mask;
    std::memcpy(&x, &bits, sizeof bits);
    return x;
  }
};

}  // namespace terse

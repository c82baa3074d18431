#pragma once

#include <cmath>
#include <cstdint>

#include "terse/core/macros.h"

namespace terse {

// SPAM, one element (Huang et al. 2025, "SPAM: Spike-Aware Adam with Momentum Reset for Stable
// LLM Training", arXiv 2501.06842; spec optimizers.md §12), following the official
// TianjinYellow/SPAM-Optimizer `galore_torch/SPAM.py` `AdamW.step` (exported as SPAM):
//   reset:  m = v = 0                              every DeltaT steps (SpamSchedule)
//   clip:   if g^2 > threshold * v:  g = sign(g) * sqrt(v * threshold)   v before this step
//   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
//   p -= lr * [sqrt(bc2) / bc1] * scale * m / (sqrt(v) + eps)    [] with correct_bias
//   p -= lr * weight_decay * p                     decoupled, after the update, not scaled
// `scale` (the cosine warm-up after a reset), `reset` and `clip` are per-step scalars from
// SpamSchedule (src/optim/spam_schedule.h). The official code writes the clipped gradient into
// p.grad; terse leaves the gradient alone (the update is the same). States: s0 = exp_avg, s1 =
// exp_avg_sq.
struct SpamRule {
  static constexpr int kNumStates = 2;

  float beta1 = 0.9f, one_minus_beta1 = 0.1f;
  float beta2 = 0.999f, one_minus_beta2 = 0.001f;
  float eps = 1e-6f;
  float threshold = 0;
  float neg_step_size = 0;  // -lr * [sqrt(bc2) / bc1] * scale
  float decay = 1;          // 1 - lr * weight_decay
  bool reset = false;       // zero m and v before this step
  bool clip = false;        // spike-aware clipping is on at this step

  // `scale` is SpamSchedule::warmup_scale; bias corrections in double on the host, once per
  // step, with the per-parameter step count `step` (1-based, never reset).
  static SpamRule for_step(double lr, double beta1, double beta2, double eps, double weight_decay,
                           bool correct_bias, double threshold, double scale, bool reset, bool clip,
                           int64_t step) {
    SpamRule r;
    const double t = static_cast<double>(step);
    double step_size = lr;
    if (correct_bias) {
      step_size *= std::sqrt(1.0 - std::pow(beta2, t)) / (1.0 - std::pow(beta1, t));
    }
    r.beta1 = static_cast<float>(beta1);
    r.one_minus_beta1 = static_cast<float>(1.0 - beta1);
    r.beta2 = static_cast<float>(beta2);
    r.one_minus_beta2 = static_cast<float>(1.0 - beta2);
    r.eps = static_cast<float>(eps);
    r.threshold = static_cast<float>(threshold);
    r.neg_step_size = static_cast<float>(-step_size * scale);
    r.decay = static_cast<float>(1.0 - lr * weight_decay);
    r.reset = reset;
    r.clip = clip;
    return r;
  }

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& s0, float& s1,
                                             float& /*s2*/) const {
    const float m0 = reset ? 0.0f : s0;
    const float v0 = reset ? 0.0f : s1;
    // Branch-free so the loop vectorises; a NaN g is no spike and propagates, as in torch.
    const bool spike = clip && g * g > threshold * v0;
    const float bound = std::sqrt(v0 * threshold);
    g = spike ? (g > 0.0f ? bound : -bound) : g;
    const float m = beta1 * m0 + one_minus_beta1 * g;
    const float v = beta2 * v0 + one_minus_beta2 * (g * g);
    s0 = m;
    s1 = v;
    p = p + neg_step_size * (m / (std::sqrt(v) + eps));
    p = p * decay;
  }
};

}  // namespace terse

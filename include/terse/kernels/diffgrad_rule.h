#pragma once

#include <cmath>
#include <cstdint>

#include "terse/core/macros.h"

namespace terse {

// diffGrad, one element (Dubey et al., "diffGrad: An Optimization Method for Convolutional
// Neural Networks", IEEE TNNLS 2020; spec optimizers.md §11), following the official
// shivram1987/diffGrad `diffGrad_v2.py` `diffgrad.step`:
//   g += weight_decay * p                          coupled (L2)
//   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
//   xi = sigmoid(|prev - g|) = 1 / (1 + exp(-|prev - g|))     prev = 0 at the first step
//   prev = g                                       the gradient with decay added, as the code
//   p -= lr * sqrt(bc2) / bc1 * m * xi / (sqrt(v) + eps)       eps outside the bias correction
// Where the code differs from the paper: v1 (`diffGrad.py`, the paper's code) kept `prev` as a
// reference to the gradient, so |prev - g| was 0 and xi always 0.5; v2 copies it (issue #2).
// The official coupled decay also writes g + wd * p into p.grad; terse leaves the gradient alone.
// States: s0 = exp_avg, s1 = exp_avg_sq, s2 = previous_grad.
struct DiffGradRule {
  static constexpr int kNumStates = 3;

  float beta1 = 0.9f, one_minus_beta1 = 0.1f;
  float beta2 = 0.999f, one_minus_beta2 = 0.001f;
  float l2 = 0;
  float eps = 1e-8f;
  float neg_step_size = 0;  // -lr * sqrt(bc2) / bc1

  // Bias corrections in double on the host, once per step; `step` is 1-based.
  static DiffGradRule for_step(double lr, double beta1, double beta2, double eps,
                               double weight_decay, int64_t step) {
    DiffGradRule r;
    const double t = static_cast<double>(step);
    const double bc1 = 1.0 - std::pow(beta1, t);
    const double bc2 = 1.0 - std::pow(beta2, t);
    r.beta1 = static_cast<float>(beta1);
    r.one_minus_beta1 = static_cast<float>(1.0 - beta1);
    r.beta2 = static_cast<float>(beta2);
    r.one_minus_beta2 = static_cast<float>(1.0 - beta2);
    r.l2 = static_cast<float>(weight_decay);
    r.eps = static_cast<float>(eps);
    r.neg_step_size = static_cast<float>(-(lr * std::sqrt(bc2) / bc1));
    return r;
  }

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& s0, float& s1,
                                             float& s2) const {
    g = g + l2 * p;
    const float m = beta1 * s0 + one_minus_beta1 * g;
    const float v = beta2 * s1 + one_minus_beta2 * (g * g);
    const float xi = 1.0f / (1.0f + std::exp(-std::fabs(s2 - g)));
    s0 = m;
    s1 = v;
    s2 = g;
    p = p + neg_step_size * (m * xi) / (std::sqrt(v) + eps);
  }
};

}  // namespace terse

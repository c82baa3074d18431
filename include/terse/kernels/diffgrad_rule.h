#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

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

  // exp(-d) for d >= 0 (a NaN d gives NaN), within 2.5 ulp of std::exp (tested), written so the
  // element loop vectorises: std::exp is a scalar libm call without -ffast-math and made the
  // step 10x slower. -d = n ln2 + r, |r| <= ln2 / 2; exp(r) by Cephes' expf polynomial, 2^n
  // from the exponent bits. Past d = 87 it returns exp(-87) ~ 1.6e-38 (1 / (1 + e) is 1 anyway).
  static TERSE_HD TERSE_FORCEINLINE float exp_neg(float d) {
    const float x = d > 87.0f ? -87.0f : (d == d ? -d : 0.0f);
    const float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
    const float n = (x * 1.44269504088896341f + kRound) - kRound;
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;  // ln2 in two parts
    float q = 1.9875691500e-4f;
    q = q * r + 1.3981999507e-3f;
    q = q * r + 8.3334519073e-3f;
    q = q * r + 4.1665795894e-2f;
    q = q * r + 1.6666665459e-1f;
    q = q * r + 5.0000001201e-1f;
    const float e = q * r * r + r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // n >= -126: a normal 2^n
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return d == d ? e * scale : d;
  }

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& s0, float& s1,
                                             float& s2) const {
    g = g + l2 * p;
    const float m = beta1 * s0 + one_minus_beta1 * g;
    const float v = beta2 * s1 + one_minus_beta2 * (g * g);
    const float xi = 1.0f / (1.0f + exp_neg(std::fabs(s2 - g)));
    s0 = m;
    s1 = v;
    s2 = g;
    p = p + neg_step_size * (m * xi) / (std::sqrt(v) + eps);
  }
};

}  // namespace terse

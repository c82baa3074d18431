#pragma once

// SGD-SaI's gradient signal-to-noise ratio of one tensor (Xu et al. 2024; spec optimizers.md §4;
// Rule: sgd_sai_rule.h), as the official warmup_step computes it:
//   gsnr = ||g||_2 / (std_unbiased(g) + eps)     std of a 1-element tensor is NaN -> 0 in torch
// from sums in double taken one element after the other (gsnr_sums on the CPU; cuda_gsnr.h
// gives the same bits on a GPU), and the formula on the host (gsnr_from_sums) for both.
// Include where the file is built without FMA contraction (-ffp-contract=off), as
// src/optim is: dev's (g_i - mean)^2 is not exact, so a fused multiply-add would change it.

#include <cmath>
#include <cstdint>

#include "terse/core/dtype.h"

namespace terse {

// The two sums of a g-SNR, each in double in element order:
//   sum_sq = sum_i g_i^2
//   dev    = sum_i (g_i - mean)^2 with mean = (sum_i g_i) / n, summed in order too (n > 1 only)
struct GsnrSums {
  double sum_sq = 0;
  double dev = 0;
};

inline float gsnr_from_sums(const GsnrSums& s, int64_t n, double eps) {
  const double std = n > 1 ? std::sqrt(s.dev / static_cast<double>(n - 1)) : 0.0;
  return static_cast<float>(std::sqrt(s.sum_sq) / (std + eps));
}

// Two passes over g[0, n) in host memory: the mean, then the squared deviations.
template <typename T>
GsnrSums gsnr_sums(const T* g, int64_t n) {
  GsnrSums s;
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = load_as_float(g, i);
    sum += v;
    s.sum_sq += v * v;
  }
  if (n > 1) {
    const double mean = sum / static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i) {
      const double d = load_as_float(g, i) - mean;
      s.dev += d * d;
    }
  }
  return s;
}

}  // namespace terse

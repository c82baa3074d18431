#pragma once

#include <cstdint>
#include <vector>

#include "terse/kernels/fixed_order_sum.h"

namespace terse {

// Per-tensor reductions over f32 arrays in one GPU's memory, bit for bit the CPU's, for the
// optimizers whose step needs per-tensor norms or maxima (1-bit LAMB). Each runs after the work
// already enqueued on the legacy default stream of `device` and waits for its results. Throws
// CudaError when the runtime fails (and in a build without CUDA, saying so), InvalidArgument on
// a bad device index, a negative n, or a null pointer with n > 0.

// A range of n f32 elements at `data` (GPU memory).
struct CudaF32Range {
  const float* data = nullptr;
  int64_t n = 0;
};

// Per range, fixed_sum::host_sum(data, n, term) with the same bits (fixed_order_sum.h); 0 for an
// empty range. One pass per range, all enqueued before one copy back.
std::vector<double> cuda_fixed_sums(int device, const std::vector<CudaF32Range>& ranges,
                                    fixed_sum::Term term);

// Per range, what the CPU loop `float m = 0; for (x : range) if (x > m) m = x;` gives: the largest
// element when one is > 0 (NaN never counts), else +0. Any order gives it, so one launch does
// every range.
std::vector<float> cuda_positive_max(int device, const std::vector<CudaF32Range>& ranges);

// The CPU side of cuda_positive_max (host memory).
inline float host_positive_max(const float* x, int64_t n) {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    if (x[i] > m) m = x[i];
  }
  return m;
}

}  // namespace terse

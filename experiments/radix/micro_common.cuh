#pragma once

// Shared by the throwaway measurements here: the error check and the CUDA-event median of the
// GPU benches (bench/cuda_timing.h), in microseconds; a plain read of a float array (the floor of
// a pass over it); and the gradient-like input (about N(0, 1e-3): a sum of 4 uniforms).

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "../../bench/cuda_timing.h"

#define CK(x) terse::bench::cuda_ok((x), #x)

inline float time_us(const std::function<void()>& f, int reps = 50) {
  return static_cast<float>(1000.0 * terse::bench::cuda_median_ms(reps, f));
}

__global__ void stream_kernel(const float4* x, int64_t n4, float* out) {
  float acc = 0;
  const int64_t s = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n4; i += s) {
    const float4 v = x[i];
    acc += fabsf(v.x) + fabsf(v.y) + fabsf(v.z) + fabsf(v.w);
  }
  if (acc == -1.0f) out[0] = acc;
}

inline std::vector<float> gradient_like(int64_t n) {
  std::vector<float> h(static_cast<size_t>(n));
  uint32_t s = 1;
  for (auto& v : h) {
    float a = 0;
    for (int j = 0; j < 4; ++j) {
      s = s * 1664525u + 1013904223u;
      a += static_cast<float>(s >> 8) / 16777216.0f;
    }
    v = (a - 2.0f) * 1.7e-3f;
  }
  return h;
}

#pragma once

// Shared by the throwaway measurements here: the error check and the CUDA-event median of the
// GPU benches (bench/cuda_timing.h), in microseconds; a plain read of a float array (the floor of
// a pass over it); the gradient-like input (about N(0, 1e-3): a sum of 4 uniforms); and the
// stash pass's buffers.

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "../../bench/cuda_timing.h"
#include "../../src/compress/dgc/cuda/select_kernels.cuh"

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

// A stash of `slots` entries per tile over n elements, its tile counts, and room for k selected
// pairs (oi, ov). Never freed: the measurements end with the process.
struct StashBuffers {
  int64_t tiles;
  int slots;
  uint16_t* off;
  float* val;
  long long* hits;
  long long* c1;
  int64_t* oi;
  float* ov;
  StashBuffers(int64_t n, int s, int64_t k)
      : tiles((n + terse::dgc_cuda::kTile - 1) / terse::dgc_cuda::kTile), slots(s) {
    CK(cudaMalloc(&off, tiles * slots * 2));
    CK(cudaMalloc(&val, tiles * slots * 4));
    CK(cudaMalloc(&hits, tiles * 8));
    CK(cudaMalloc(&c1, tiles * 8));
    CK(cudaMalloc(&oi, k * 8));
    CK(cudaMalloc(&ov, k * 4));
  }
};

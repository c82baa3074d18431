#pragma once

// Makes a device current for a scope and restores the previous one, for the optim layer's CUDA
// code (newton_schulz.cu, matrix_kernels.cu). Internal to src/optim/cuda.

#include <cuda_runtime.h>

#include "codec_util.cuh"  // cuda_check (src/kernels/cuda)

namespace terse::optim_cuda {

using cuda_codec::cuda_check;

class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    cuda_check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) cuda_check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// Blocks for a grid-stride loop over `n` items: enough to fill a large GPU, no more.
inline unsigned grid_for(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 4096 ? (blocks > 0 ? blocks : 1) : 4096);
}

}  // namespace terse::optim_cuda

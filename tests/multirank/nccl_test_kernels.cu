#include "nccl_test_kernels.h"

namespace terse::testing {

namespace {

__device__ uint64_t global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void spin(uint64_t nanoseconds) {
  const uint64_t start = global_ns();
  while (global_ns() - start < nanoseconds) {
    __nanosleep(1000);
  }
}

}  // namespace

cudaError_t spin_then_fill(uint8_t* dst, size_t n, uint8_t value, uint64_t nanoseconds,
                           cudaStream_t stream) {
  spin<<<1, 1, 0, stream>>>(nanoseconds);
  const cudaError_t launch = cudaGetLastError();
  if (launch != cudaSuccess) return launch;
  return n == 0 ? cudaSuccess : cudaMemsetAsync(dst, value, n, stream);
}

}  // namespace terse::testing

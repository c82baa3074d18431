// Zeroing and dividing a gradient buffer on the GPU (terse/kernels/cuda_buffer.h).
#include <cstdint>

#include "codec_util.cuh"
#include "terse/core/dispatch.h"
#include "terse/core/dtype.h"
#include "terse/kernels/cuda_buffer.h"

namespace terse {

using cuda_codec::cuda_check;

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    divide_kernel(T* __restrict__ x, int64_t n, float divisor) {
  const int64_t stride = int64_t{gridDim.x} * kThreads;
  for (int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x; i < n; i += stride) {
    store_from_float(x, i, load_as_float(x, i) / divisor);
  }
}

}  // namespace

void cuda_zero(void* ptr, size_t bytes) {
  if (bytes == 0) return;
  cuda_check(cudaMemsetAsync(ptr, 0, bytes, cudaStreamLegacy), "cudaMemsetAsync of a buffer");
}

void cuda_divide(const TensorView& x, float divisor) {
  TERSE_CHECK(x.device.is_cuda(), InvalidArgument, "cuda_divide got a view on ", x.device.str(),
              "; pass a view of GPU memory");
  TERSE_CHECK(is_floating(x.dtype), InvalidArgument, "cuda_divide got dtype ",
              dtype_name(x.dtype), "; pass f32, bf16 or f16");
  if (x.numel == 0) return;
  int previous = 0;
  cuda_check(cudaGetDevice(&previous), "cudaGetDevice");
  cuda_check(cudaSetDevice(x.device.index), "cudaSetDevice");
  // Enough blocks to fill an H100 several times over; the grid-stride loop covers the rest.
  const int64_t wanted = (x.numel + kThreads - 1) / kThreads;
  const unsigned blocks = static_cast<unsigned>(wanted < 4096 ? wanted : 4096);
  dispatch_floating(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    divide_kernel<T><<<blocks, kThreads, 0, cudaStreamLegacy>>>(static_cast<T*>(x.data), x.numel,
                                                                 divisor);
  });
  const cudaError_t launch = cudaGetLastError();
  cudaSetDevice(previous);
  cuda_check(launch, "the divide kernel's launch");
}

}  // namespace terse

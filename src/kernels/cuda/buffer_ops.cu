// Zeroing, scaling and checking a gradient buffer on the GPU (terse/kernels/cuda_buffer.h).
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
    scale_kernel(T* __restrict__ x, int64_t n, float s, bool divide) {
  const int64_t stride = int64_t{gridDim.x} * kThreads;
  for (int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x; i < n; i += stride) {
    const float v = load_as_float(x, i);
    store_from_float(x, i, divide ? v / s : v * s);
  }
}

// Sets *bad to 1 when an element is NaN or infinite.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    nonfinite_kernel(const T* __restrict__ x, int64_t n, int* bad) {
  const int64_t stride = int64_t{gridDim.x} * kThreads;
  int found = 0;
  for (int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x; i < n; i += stride) {
    found |= isfinite(load_as_float(x, i)) ? 0 : 1;
  }
  if (__syncthreads_or(found) != 0 && threadIdx.x == 0) atomicExch(bad, 1);
}

void check_view(const TensorView& x, const char* fn) {
  TERSE_CHECK(x.device.is_cuda(), InvalidArgument, fn, " got a view on ", x.device.str(),
              "; pass a view of GPU memory");
  TERSE_CHECK(is_floating(x.dtype), InvalidArgument, fn, " got dtype ", dtype_name(x.dtype),
              "; pass f32, bf16 or f16");
}

// Runs launch(blocks) on x's device, then restores the caller's device.
template <typename Launch>
void on_device_of(const TensorView& x, const char* what, Launch&& launch) {
  int previous = 0;
  cuda_check(cudaGetDevice(&previous), "cudaGetDevice");
  cuda_check(cudaSetDevice(x.device.index), "cudaSetDevice");
  // Enough blocks to fill an H100 several times over; the grid-stride loops cover the rest.
  const int64_t wanted = (x.numel + kThreads - 1) / kThreads;
  launch(static_cast<unsigned>(wanted < 4096 ? wanted : 4096));
  const cudaError_t err = cudaGetLastError();
  cudaSetDevice(previous);
  cuda_check(err, what);
}

void scale(const TensorView& x, float s, bool divide, const char* fn) {
  check_view(x, fn);
  if (x.numel == 0) return;
  on_device_of(x, "the scale kernel's launch", [&](unsigned blocks) {
    dispatch_floating(x.dtype, [&](auto tag) {
      using T = decltype(tag);
      scale_kernel<T>
          <<<blocks, kThreads, 0, cudaStreamLegacy>>>(static_cast<T*>(x.data), x.numel, s, divide);
    });
  });
}

}  // namespace

void cuda_zero(void* ptr, size_t bytes) {
  if (bytes == 0) return;
  cuda_check(cudaMemsetAsync(ptr, 0, bytes, cudaStreamLegacy), "cudaMemsetAsync of a buffer");
}

void cuda_divide(const TensorView& x, float divisor) { scale(x, divisor, true, "cuda_divide"); }

void cuda_multiply(const TensorView& x, float factor) { scale(x, factor, false, "cuda_multiply"); }

bool cuda_all_finite(const TensorView& x) {
  check_view(x, "cuda_all_finite");
  if (x.numel == 0) return true;
  int* flag = nullptr;  // the codec scratch of x's device: no allocation per call
  on_device_of(x, "the finite check's launch", [&](unsigned blocks) {
    flag = static_cast<int*>(cuda_codec::scratch(cuda_codec::Scratch::kFlags, sizeof(int)));
    cuda_check(cudaMemsetAsync(flag, 0, sizeof(int), cudaStreamLegacy), "cudaMemsetAsync");
    dispatch_floating(x.dtype, [&](auto tag) {
      using T = decltype(tag);
      nonfinite_kernel<T>
          <<<blocks, kThreads, 0, cudaStreamLegacy>>>(static_cast<const T*>(x.data), x.numel, flag);
    });
  });
  int bad = 0;
  cuda_check(cudaMemcpy(&bad, flag, sizeof bad, cudaMemcpyDeviceToHost),
             "the finite check's read-back");
  return bad == 0;
}

}  // namespace terse

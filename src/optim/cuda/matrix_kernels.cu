// AuON's and FRUGAL's GPU passes that are not multi-tensor Rules (matrix_kernels.h). Built with
// -fmad=false and IEEE division and square root, so the per-element formulas (the shared
// TERSE_HD Rules and auon_cosh) give the CPU's bits.
#include <cuda_runtime.h>

#include <limits>

#include "device_guard.cuh"
#include "matrix_kernels.h"
#include "seq_sum.cuh"  // src/kernels/cuda
#include "terse/core/check.h"
#include "terse/core/dtype.h"
#include "terse/kernels/auon_rule.h"

namespace terse::optim_detail {
namespace {

using optim_cuda::cuda_check;
using optim_cuda::DeviceGuard;
using optim_cuda::grid_for;

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads)
    any_nan_kernel(const float* __restrict__ x, int64_t n, unsigned* __restrict__ flag) {
  const int64_t stride = int64_t{gridDim.x} * kThreads;
  for (int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x; i < n; i += stride) {
    if (x[i] != x[i]) atomicOr(flag, 1u);
  }
}

__global__ void __launch_bounds__(kThreads)
    cosh_kernel(float* __restrict__ x, int64_t n, float inv, float gamma) {
  const int64_t stride = int64_t{gridDim.x} * kThreads;
  for (int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x; i < n; i += stride) {
    x[i] = auon_cosh(x[i] * inv * gamma);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    frugal_coord_kernel(FrugalAdamRule adam, FrugalInactiveRule rest,
                        const uint64_t* __restrict__ mask, const int64_t* __restrict__ offsets,
                        T* __restrict__ p, const T* __restrict__ g, float* __restrict__ m,
                        float* __restrict__ v, int64_t n) {
  const int64_t stride = int64_t{gridDim.x} * kThreads;
  for (int64_t k = int64_t{blockIdx.x} * kThreads + threadIdx.x; k < n; k += stride) {
    const int64_t w = k >> 6;
    const int bit = static_cast<int>(k & 63);
    const uint64_t bits = mask[w];
    float pv = load_as_float(p, k);
    const float gv = load_as_float(g, k);
    float unused = 0;
    if ((bits >> bit) & 1u) {
      const int64_t slot = offsets[w] + __popcll(bits & ((uint64_t{1} << bit) - 1u));
      adam(pv, gv, m[slot], v[slot], unused);
    } else {
      float none0 = 0, none1 = 0;
      rest(pv, gv, none0, none1, unused);
    }
    store_from_float(p, k, pv);
  }
}

}  // namespace

double cuda_sequential_sum_squares(int device, const float* x, int64_t n) {
  if (n <= 0) return 0.0;
  DeviceGuard guard(device);
  const cuda_codec::SeqSum s = cuda_codec::cuda_sequential_sum(x, n, cuda_codec::SumTerm::kSquare);
  if (s.finite) return s.sum;
  // A term is Inf or NaN, where the exact walk stops: which one decides the CPU's sum.
  unsigned* flag = nullptr;
  cuda_check(cudaMalloc(&flag, sizeof(unsigned)), "cudaMalloc of a flag");
  unsigned found = 0;
  cudaError_t err = cudaMemsetAsync(flag, 0, sizeof(unsigned), cudaStreamLegacy);
  if (err == cudaSuccess) {
    any_nan_kernel<<<grid_for(n, kThreads), kThreads, 0, cudaStreamLegacy>>>(x, n, flag);
    err = cudaGetLastError();
  }
  if (err == cudaSuccess) err = cudaMemcpy(&found, flag, sizeof found, cudaMemcpyDeviceToHost);
  cudaFree(flag);
  cuda_check(err, "the NaN check of a sum of squares");
  return found != 0 ? std::numeric_limits<double>::quiet_NaN()
                    : std::numeric_limits<double>::infinity();
}

void cuda_auon_cosh(int device, float* x, int64_t n, float inv, float gamma) {
  if (n <= 0) return;
  DeviceGuard guard(device);
  cosh_kernel<<<grid_for(n, kThreads), kThreads, 0, cudaStreamLegacy>>>(x, n, inv, gamma);
  cuda_check(cudaGetLastError(), "the AuON cosh launch");
}

void cuda_frugal_coord_step(const FrugalAdamRule& adam, const FrugalInactiveRule& rest,
                            const uint64_t* mask, const int64_t* word_offsets,
                            const TensorView& param, const TensorView& grad, float* m, float* v) {
  TERSE_CHECK(param.device.is_cuda() && grad.device == param.device, InvalidArgument,
              "cuda_frugal_coord_step: the param is on ", param.device.str(), " and its grad on ",
              grad.device.str(), "; pass the tensors of one CUDA device");
  TERSE_CHECK(grad.dtype == param.dtype && grad.numel == param.numel, InvalidArgument,
              "cuda_frugal_coord_step: the grad is ", dtype_name(grad.dtype), "[", grad.numel,
              "] but the param ", dtype_name(param.dtype), "[", param.numel, "]");
  const int64_t n = param.numel;
  if (n == 0) return;
  DeviceGuard guard(param.device.index);
  const unsigned grid = grid_for(n, kThreads);
  switch (param.dtype) {
    case DType::kF32:
      frugal_coord_kernel<float><<<grid, kThreads, 0, cudaStreamLegacy>>>(
          adam, rest, mask, word_offsets, static_cast<float*>(param.data),
          static_cast<const float*>(grad.data), m, v, n);
      break;
    case DType::kBF16:
      frugal_coord_kernel<BFloat16><<<grid, kThreads, 0, cudaStreamLegacy>>>(
          adam, rest, mask, word_offsets, static_cast<BFloat16*>(param.data),
          static_cast<const BFloat16*>(grad.data), m, v, n);
      break;
    case DType::kF16:
      frugal_coord_kernel<Half><<<grid, kThreads, 0, cudaStreamLegacy>>>(
          adam, rest, mask, word_offsets, static_cast<Half*>(param.data),
          static_cast<const Half*>(grad.data), m, v, n);
      break;
    default:
      TERSE_THROW(InvalidArgument, "cuda_frugal_coord_step: dtype ", dtype_name(param.dtype),
                  "; params must be f32, bf16 or f16");
  }
  cuda_check(cudaGetLastError(), "the FRUGAL coord-mode launch");
}

}  // namespace terse::optim_detail

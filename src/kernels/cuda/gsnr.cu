// cuda_gsnr_sums (terse/kernels/cuda_gsnr.h): the CPU's sequential double sums of SGD-SaI's
// g-SNR, bit for bit. One block per tensor: thread 0 adds the elements one after the other, in
// element order, as gsnr_sums does; warps 1.. stage the next tile into shared memory meanwhile,
// so the walk reads shared memory only. Built with -fmad=false (src/kernels/CMakeLists.txt):
// dev += d * d must round the product before the sum, as the CPU does.
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "codec_util.cuh"
#include "terse/core/check.h"
#include "terse/core/dtype.h"
#include "terse/kernels/cuda_gsnr.h"

namespace terse {

using cuda_codec::cuda_check;
namespace {

constexpr int kThreads = 256;
constexpr int kLoaders = kThreads - 32;  // warp 0 holds the summing thread and does not stage
constexpr int kTile = 2048;              // elements per shared-memory tile (two are in use)

struct GradRef {
  const void* data;
  int64_t n;
};

// Warps 1.. copy elements [base, base + kTile) of g (those below n) into tile, as floats.
template <typename T>
__device__ __forceinline__ void stage(const T* __restrict__ g, int64_t n, int64_t base,
                                      float* tile) {
  if (threadIdx.x < 32) return;
  const int64_t left = n - base;
  const int m = left < kTile ? static_cast<int>(left) : kTile;
  for (int j = static_cast<int>(threadIdx.x) - 32; j < m; j += kLoaders) {
    tile[j] = load_as_float(g, base + j);
  }
}

// Block b: tensor refs[which[b]]. Pass 0 sums g_i and g_i^2; pass 1 (n > 1) sums (g_i - mean)^2.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    gsnr_kernel(const GradRef* __restrict__ refs, const int32_t* __restrict__ which,
                GsnrSums* __restrict__ out) {
  __shared__ float tile[2][kTile];
  const int32_t idx = which[blockIdx.x];
  const T* __restrict__ g = static_cast<const T*>(refs[idx].data);
  const int64_t n = refs[idx].n;
  const int64_t tiles = (n + kTile - 1) / kTile;
  const int passes = n > 1 ? 2 : 1;  // the same for the whole block: the barriers stay uniform
  double sum = 0, sum_sq = 0, dev = 0, mean = 0;  // thread 0's
  for (int pass = 0; pass < passes; ++pass) {
    // The barrier that ended the previous pass (or none yet) orders this write after every read
    // of tile[0].
    stage(g, n, 0, tile[0]);
    __syncthreads();
    for (int64_t t = 0; t < tiles; ++t) {
      // tile[(t + 1) & 1] was last read in iteration t - 1, which the barrier below closed.
      if (t + 1 < tiles) stage(g, n, (t + 1) * kTile, tile[(t + 1) & 1]);
      if (threadIdx.x == 0) {
        const float* x = tile[t & 1];
        const int64_t left = n - t * kTile;
        const int m = left < kTile ? static_cast<int>(left) : kTile;
        if (pass == 0) {
#pragma unroll 8
          for (int j = 0; j < m; ++j) {
            const double v = x[j];
            sum += v;
            sum_sq += v * v;
          }
        } else {
#pragma unroll 8
          for (int j = 0; j < m; ++j) {
            const double d = static_cast<double>(x[j]) - mean;
            dev += d * d;
          }
        }
      }
      __syncthreads();
    }
    mean = sum / static_cast<double>(n);  // meaningful (and used) in thread 0 only
  }
  if (threadIdx.x == 0) out[idx] = GsnrSums{sum_sq, dev};
}

}  // namespace

std::vector<GsnrSums> cuda_gsnr_sums(const std::vector<TensorView>& grads) {
  std::vector<GsnrSums> sums(grads.size());
  int device = -1;
  std::vector<GradRef> refs(grads.size());
  std::vector<int32_t> which[3];  // the tensors of each dtype with numel > 0
  for (size_t i = 0; i < grads.size(); ++i) {
    const TensorView& g = grads[i];
    TERSE_CHECK(g.device.is_cuda(), InvalidArgument, "cuda_gsnr_sums: gradient ", i, " is on ",
                g.device.str(), "; pass CUDA tensors (gsnr_sums takes host ones)");
    TERSE_CHECK(g.device.index >= 0, InvalidArgument, "cuda_gsnr_sums: gradient ", i,
                " has device index ", g.device.index, "; pass a CUDA device index >= 0");
    TERSE_CHECK(device < 0 || g.device.index == device, InvalidArgument,
                "cuda_gsnr_sums: gradient ", i, " is on cuda:", g.device.index,
                " but gradient 0 on cuda:", device, "; one call takes the tensors of one device");
    device = g.device.index;
    TERSE_CHECK(g.dtype == DType::kF32 || g.dtype == DType::kBF16 || g.dtype == DType::kF16,
                InvalidArgument, "cuda_gsnr_sums: gradient ", i, " has dtype ", dtype_name(g.dtype),
                "; gradients must be f32, bf16 or f16");
    TERSE_CHECK(g.numel >= 0, InvalidArgument, "cuda_gsnr_sums: gradient ", i, " has numel ",
                g.numel);
    if (g.numel == 0) continue;  // both sums 0, as on the CPU
    TERSE_CHECK(g.data != nullptr, InvalidArgument, "cuda_gsnr_sums: gradient ", i, " has ",
                g.numel, " elements but a null pointer");
    refs[i] = {g.data, g.numel};
    const int k = g.dtype == DType::kF32 ? 0 : (g.dtype == DType::kBF16 ? 1 : 2);
    which[k].push_back(static_cast<int32_t>(i));
  }
  TERSE_CHECK(grads.size() < (size_t{1} << 31), InvalidArgument, "cuda_gsnr_sums: ", grads.size(),
              " tensors in one call");
  if (which[0].empty() && which[1].empty() && which[2].empty()) return sums;

  int previous = 0;
  cuda_check(cudaGetDevice(&previous), "cudaGetDevice");
  cuda_check(cudaSetDevice(device), "cudaSetDevice");
  GradRef* dev_refs = nullptr;
  int32_t* dev_which = nullptr;
  GsnrSums* dev_out = nullptr;
  const size_t n = grads.size();
  cudaError_t err = cudaMalloc(&dev_refs, n * sizeof(GradRef));
  if (err == cudaSuccess) err = cudaMalloc(&dev_which, n * sizeof(int32_t));
  if (err == cudaSuccess) err = cudaMalloc(&dev_out, n * sizeof(GsnrSums));
  if (err == cudaSuccess) {
    err = cudaMemcpy(dev_refs, refs.data(), n * sizeof(GradRef), cudaMemcpyHostToDevice);
  }
  // The index lists of the three dtypes one after the other, one launch each.
  size_t at = 0;
  for (int k = 0; k < 3 && err == cudaSuccess; ++k) {
    if (which[k].empty()) continue;
    err = cudaMemcpy(dev_which + at, which[k].data(), which[k].size() * sizeof(int32_t),
                     cudaMemcpyHostToDevice);
    if (err != cudaSuccess) break;
    const auto blocks = static_cast<unsigned>(which[k].size());
    switch (k) {
      case 0:
        gsnr_kernel<float><<<blocks, kThreads>>>(dev_refs, dev_which + at, dev_out);
        break;
      case 1:
        gsnr_kernel<BFloat16><<<blocks, kThreads>>>(dev_refs, dev_which + at, dev_out);
        break;
      default:
        gsnr_kernel<Half><<<blocks, kThreads>>>(dev_refs, dev_which + at, dev_out);
        break;
    }
    err = cudaGetLastError();
    at += which[k].size();
  }
  // Every tensor with numel > 0 was written; the others keep the zeros of `sums`.
  std::vector<GsnrSums> got(n);
  if (err == cudaSuccess) {
    err = cudaMemcpy(got.data(), dev_out, n * sizeof(GsnrSums), cudaMemcpyDeviceToHost);
  }
  cudaFree(dev_refs);
  cudaFree(dev_which);
  cudaFree(dev_out);
  cudaSetDevice(previous);
  cuda_check(err, "the g-SNR sums of the gradients");
  for (int k = 0; k < 3; ++k) {
    for (const int32_t i : which[k]) sums[static_cast<size_t>(i)] = got[static_cast<size_t>(i)];
  }
  return sums;
}

}  // namespace terse

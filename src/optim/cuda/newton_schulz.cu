// CudaNewtonSchulz (terse/optim/cuda_newton_schulz.h): the Newton-Schulz iteration on one GPU.
// Products by cuBLAS; the norm, the normalisation and the bf16 combinations in small kernels
// from newton_schulz_steps.h, the CPU's own formulas. Built with -fmad=false and IEEE division
// and square root (src/optim/CMakeLists.txt), so those steps give the CPU's bits.
//
// Layout. The CPU works on X = U (m x n, m <= n; U transposed when rows > cols) in row-major
// buffers. cuBLAS is column-major, and U's row-major storage read column-major is U^T: that is
// X^T (n x m, ld n) for a wide U and X itself (m x n, ld m) for a tall one. The products below
// take that storage as it is, with cuBLAS's operand flags, so no transpose is ever copied and
// every X-shaped buffer has U's layout:
//   A = X X^T:   wide: S^T S  (T, N);            tall: S S^T  (N, T)
//   X' = B X:    wide: S' = S B^T (N, T);        tall: S' = B S (N, N)
// A and B are m x m and, in exact arithmetic, symmetric polynomials of X X^T, so reading them
// either way gives the same matrices.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cub/block/block_reduce.cuh>
#include <utility>

#include "cublas_util.cuh"
#include "device_guard.cuh"
#include "newton_schulz_steps.h"
#include "terse/core/check.h"
#include "terse/core/dtype.h"
#include "terse/optim/cuda_newton_schulz.h"

namespace terse {
namespace {

using cuda_codec::cublas_check;
using optim_cuda::cuda_check;
using optim_cuda::DeviceGuard;
using optim_cuda::grid_for;

constexpr int kThreads = 256;
constexpr int kMaxDevices = 64;
constexpr int kMaxParts = 512;  // blocks per matrix in the norm's first pass

void launched(const char* what) { cuda_check(cudaGetLastError(), what); }

// Strided-batched products with f32 accumulation and f32 output, inputs of `type`.
struct Gemm {
  cublasHandle_t handle;
  int batch;
  cudaDataType type;  // CUDA_R_32F or CUDA_R_16BF

  void operator()(cublasOperation_t ta, cublasOperation_t tb, int M, int N, int K, float alpha,
                  const void* A, int lda, long long sa, const void* B, int ldb, long long sb,
                  float beta, float* C, int ldc, long long sc) const {
    cublas_check(cublasGemmStridedBatchedEx(handle, ta, tb, M, N, K, &alpha, A, type, lda, sa, B,
                                            type, ldb, sb, &beta, C, CUDA_R_32F, ldc, sc, batch,
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmStridedBatchedEx");
  }
};

// The three products of an iteration on X's storage S (see the layout note at the top).
struct Products {
  Gemm gemm;
  bool wide;
  int m, n;

  long long sx() const { return static_cast<long long>(m) * n; }
  long long sm() const { return static_cast<long long>(m) * m; }

  // C (m x m) = X X^T
  void gram(const void* S, float* C) const {
    if (wide) {
      gemm(CUBLAS_OP_T, CUBLAS_OP_N, m, m, n, 1.0f, S, n, sx(), S, n, sx(), 0.0f, C, m, sm());
    } else {
      gemm(CUBLAS_OP_N, CUBLAS_OP_T, m, m, n, 1.0f, S, m, sx(), S, m, sx(), 0.0f, C, m, sm());
    }
  }
  // C (m x m) = alpha P Q + beta C
  void square(float alpha, const void* P, const void* Q, float beta, float* C) const {
    gemm(CUBLAS_OP_N, CUBLAS_OP_N, m, m, m, alpha, P, m, sm(), Q, m, sm(), beta, C, m, sm());
  }
  // C (X's storage) = alpha B X + beta C
  void left(float alpha, const void* B, const void* S, float beta, float* C) const {
    if (wide) {
      gemm(CUBLAS_OP_N, CUBLAS_OP_T, n, m, m, alpha, S, n, sx(), B, m, sm(), beta, C, n, sx());
    } else {
      gemm(CUBLAS_OP_N, CUBLAS_OP_N, m, n, m, alpha, B, m, sm(), S, m, sx(), beta, C, m, sx());
    }
  }
};

// Block j of the `parts` blocks of matrix b adds double(v)^2 over its share of the matrix, v the
// entry (bf16: rounded, and stored to xb, as the CPU rounds X before its norm).
template <bool kBf16>
__global__ void __launch_bounds__(kThreads)
    sum_squares_kernel(const float* __restrict__ x, int64_t size, int parts,
                       BFloat16* __restrict__ xb, double* __restrict__ partials) {
  using Reduce = cub::BlockReduce<double, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  const int64_t b = blockIdx.x / parts;
  const int64_t j = blockIdx.x % parts;
  const int64_t base = b * size;
  double s = 0;
  for (int64_t i = j * kThreads + threadIdx.x; i < size; i += int64_t{parts} * kThreads) {
    float v = x[base + i];
    if constexpr (kBf16) {
      const BFloat16 r = to_bfloat16(v);
      xb[base + i] = r;
      v = to_float(r);
    }
    s += static_cast<double>(v) * v;
  }
  const double total = Reduce(tmp).Sum(s);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// den[b] = what matrix b's entries are divided by, from its norm (ns_steps::divisor).
__global__ void __launch_bounds__(kThreads)
    divisor_kernel(const double* __restrict__ partials, int parts, float eps, bool bf16,
                   float* __restrict__ den) {
  using Reduce = cub::BlockReduce<double, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  double s = 0;
  for (int j = static_cast<int>(threadIdx.x); j < parts; j += kThreads) {
    s += partials[int64_t{blockIdx.x} * parts + j];
  }
  const double total = Reduce(tmp).Sum(s);
  if (threadIdx.x == 0) {
    den[blockIdx.x] = ns_steps::divisor(static_cast<float>(sqrt(total)), eps, bf16);
  }
}

enum class Normalize : int { kF32InPlace, kBf16ToXb, kBf16ToX };

__global__ void __launch_bounds__(kThreads)
    normalize_kernel(float* __restrict__ x, BFloat16* __restrict__ xb, int64_t size, int64_t total,
                     const float* __restrict__ den, Normalize mode) {
  const int64_t stride = int64_t{gridDim.x} * kThreads;
  for (int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x; i < total; i += stride) {
    const float d = den[i / size];
    if (mode == Normalize::kF32InPlace) {
      x[i] = ns_steps::normalized(x[i], d, false);
    } else {
      const float v = ns_steps::normalized(to_float(xb[i]), d, true);
      if (mode == Normalize::kBf16ToX) {
        x[i] = v;
      } else {
        xb[i] = to_bfloat16(v);
      }
    }
  }
}

// A = round(X X^T); B = round(c A).
__global__ void __launch_bounds__(kThreads)
    round_gram_kernel(const float* __restrict__ af, BFloat16* __restrict__ ab,
                      BFloat16* __restrict__ bb, float c, int64_t total) {
  const int64_t stride = int64_t{gridDim.x} * kThreads;
  for (int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x; i < total; i += stride) {
    const BFloat16 a = to_bfloat16(af[i]);
    ab[i] = a;
    bb[i] = to_bfloat16(c * to_float(a));
  }
}

// B = round(round(b A) + round(Y)), Y = (c A) A in f32.
__global__ void __launch_bounds__(kThreads)
    combine_b_kernel(const BFloat16* __restrict__ ab, const float* __restrict__ y,
                     BFloat16* __restrict__ bb, float b, int64_t total) {
  const int64_t stride = int64_t{gridDim.x} * kThreads;
  for (int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x; i < total; i += stride) {
    bb[i] = to_bfloat16(ns_steps::bf16_axpy(b, to_float(ab[i]), y[i]));
  }
}

// X = round(round(a X) + round(Y)), Y = B X in f32 (in x); the last iteration writes f32 x.
__global__ void __launch_bounds__(kThreads)
    combine_x_kernel(BFloat16* __restrict__ xb, float* __restrict__ x, float a, int64_t total,
                     bool last) {
  const int64_t stride = int64_t{gridDim.x} * kThreads;
  for (int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x; i < total; i += stride) {
    const float v = ns_steps::bf16_axpy(a, to_float(xb[i]), x[i]);
    if (last) {
      x[i] = v;
    } else {
      xb[i] = to_bfloat16(v);
    }
  }
}

// Byte offsets of the work buffers in one allocation, each 256-byte aligned.
struct Carver {
  size_t end = 0;
  size_t take(size_t bytes) {
    const size_t at = end;
    end += (bytes + 255) / 256 * 256;
    return at;
  }
};

}  // namespace

CudaNewtonSchulz::CudaNewtonSchulz(int device) : device_(device) {
  TERSE_CHECK(device >= 0 && device < kMaxDevices, InvalidArgument, "CudaNewtonSchulz: device ",
              device, " is out of range [0, ", kMaxDevices, ")");
}

CudaNewtonSchulz::~CudaNewtonSchulz() {
  if (work_ != nullptr) cudaFree(work_);
}

void* CudaNewtonSchulz::reserve(size_t bytes) {
  if (bytes <= bytes_) return work_;
  if (work_ != nullptr) {
    // Earlier products may still read the old buffer.
    cuda_check(cudaStreamSynchronize(cudaStreamLegacy), "cudaStreamSynchronize");
    cuda_check(cudaFree(work_), "cudaFree of the Newton-Schulz work memory");
  }
  work_ = nullptr;
  bytes_ = 0;
  const cudaError_t err = cudaMalloc(&work_, bytes);
  if (err != cudaSuccess) {
    cudaGetLastError();
    work_ = nullptr;
    TERSE_THROW(CudaError, "cudaMalloc of ", bytes,
                " bytes of Newton-Schulz work memory on cuda:", device_,
                " failed: ", cudaGetErrorString(err),
                "; free GPU memory or orthogonalise smaller matrices");
  }
  bytes_ = bytes;
  return work_;
}

void CudaNewtonSchulz::run(float* x, int64_t batch, int64_t rows, int64_t cols,
                           const NewtonSchulzOptions& o) {
  TERSE_CHECK(batch >= 0 && rows >= 0 && cols >= 0, InvalidArgument,
              "cuda_newton_schulz: batch, rows and cols must be >= 0, got ", batch, ", ", rows,
              ", ", cols);
  TERSE_CHECK(o.steps >= 0, InvalidArgument, "cuda_newton_schulz: steps must be >= 0, got ",
              o.steps);
  if (batch == 0 || rows == 0 || cols == 0) return;
  TERSE_CHECK(x != nullptr, InvalidArgument, "cuda_newton_schulz: x is null for ", batch, " x ",
              rows, " x ", cols, " matrices");
  const bool wide = rows <= cols;
  const int64_t m = wide ? rows : cols;
  const int64_t n = wide ? cols : rows;
  TERSE_CHECK(n <= INT_MAX && batch <= INT_MAX, InvalidArgument, "cuda_newton_schulz: ", batch,
              " matrices of ", rows, " x ", cols, " exceed the ", INT_MAX,
              " that cuBLAS can index per side and per batch; split them");
  const int64_t size = m * n;
  const int64_t total = batch * size;
  const int64_t gram_total = batch * m * m;
  const int parts = static_cast<int>(
      batch > 65536 ? 1 : std::min<int64_t>(kMaxParts, std::max<int64_t>(1, (size + 4095) / 4096)));

  Carver c;
  const size_t at_partials = c.take(static_cast<size_t>(batch * parts) * sizeof(double));
  const size_t at_den = c.take(static_cast<size_t>(batch) * sizeof(float));
  size_t at_xb = 0, at_y = 0, at_af = 0, at_ab = 0, at_bb = 0;
  if (o.bf16) {
    at_xb = c.take(static_cast<size_t>(total) * sizeof(BFloat16));
    if (o.steps > 0) {
      at_af = c.take(static_cast<size_t>(gram_total) * sizeof(float));
      at_ab = c.take(static_cast<size_t>(gram_total) * sizeof(BFloat16));
      at_bb = c.take(static_cast<size_t>(gram_total) * sizeof(BFloat16));
    }
  } else if (o.steps > 0) {
    at_y = c.take(static_cast<size_t>(total) * sizeof(float));
    at_af = c.take(static_cast<size_t>(gram_total) * sizeof(float));  // A
    at_bb = c.take(static_cast<size_t>(gram_total) * sizeof(float));  // B
  }

  DeviceGuard guard(device_);
  auto* base = static_cast<unsigned char*>(reserve(c.end));
  auto* partials = reinterpret_cast<double*>(base + at_partials);
  auto* den = reinterpret_cast<float*>(base + at_den);
  auto* xb = o.bf16 ? reinterpret_cast<BFloat16*>(base + at_xb) : nullptr;
  const cudaStream_t stream = cudaStreamLegacy;

  // X / (||X||_F + eps), per matrix.
  const auto norm_blocks = static_cast<unsigned>(batch * parts);
  if (o.bf16) {
    sum_squares_kernel<true><<<norm_blocks, kThreads, 0, stream>>>(x, size, parts, xb, partials);
  } else {
    sum_squares_kernel<false>
        <<<norm_blocks, kThreads, 0, stream>>>(x, size, parts, nullptr, partials);
  }
  launched("the Newton-Schulz norm launch");
  divisor_kernel<<<static_cast<unsigned>(batch), kThreads, 0, stream>>>(partials, parts, o.eps,
                                                                        o.bf16, den);
  launched("the Newton-Schulz divisor launch");
  const Normalize mode =
      !o.bf16 ? Normalize::kF32InPlace : (o.steps > 0 ? Normalize::kBf16ToXb : Normalize::kBf16ToX);
  normalize_kernel<<<grid_for(total, kThreads), kThreads, 0, stream>>>(x, xb, size, total, den,
                                                                       mode);
  launched("the Newton-Schulz normalisation launch");
  if (o.steps == 0) return;

  const Products prod{Gemm{cuda_codec::cublas_handle(device_), static_cast<int>(batch),
                           o.bf16 ? CUDA_R_16BF : CUDA_R_32F},
                      wide, static_cast<int>(m), static_cast<int>(n)};
  if (o.bf16) {
    // The CPU's bf16 emulation, step for step (newton_schulz.cc): every product's f32 output is
    // rounded by the kernel that uses it.
    auto* af = reinterpret_cast<float*>(base + at_af);
    auto* ab = reinterpret_cast<BFloat16*>(base + at_ab);
    auto* bb = reinterpret_cast<BFloat16*>(base + at_bb);
    const unsigned gram_grid = grid_for(gram_total, kThreads);
    const unsigned x_grid = grid_for(total, kThreads);
    for (int s = 0; s < o.steps; ++s) {
      prod.gram(xb, af);
      round_gram_kernel<<<gram_grid, kThreads, 0, stream>>>(af, ab, bb, o.c, gram_total);
      launched("the Newton-Schulz rounding launch");
      prod.square(1.0f, bb, ab, 0.0f, af);
      combine_b_kernel<<<gram_grid, kThreads, 0, stream>>>(ab, af, bb, o.b, gram_total);
      launched("the Newton-Schulz B launch");
      prod.left(1.0f, bb, xb, 0.0f, x);  // x holds Y = B X until combine_x_kernel
      combine_x_kernel<<<x_grid, kThreads, 0, stream>>>(xb, x, o.a, total, s + 1 == o.steps);
      launched("the Newton-Schulz X launch");
    }
    return;
  }
  // f32, as the CPU: B = c A A + b A;  Y = B X + a X;  swap.
  float* X = x;
  float* Y = reinterpret_cast<float*>(base + at_y);
  auto* A = reinterpret_cast<float*>(base + at_af);
  auto* B = reinterpret_cast<float*>(base + at_bb);
  const size_t gram_bytes = static_cast<size_t>(gram_total) * sizeof(float);
  const size_t x_bytes = static_cast<size_t>(total) * sizeof(float);
  for (int s = 0; s < o.steps; ++s) {
    prod.gram(X, A);
    cuda_check(cudaMemcpyAsync(B, A, gram_bytes, cudaMemcpyDeviceToDevice, stream),
               "cudaMemcpyAsync of A");
    prod.square(o.c, A, A, o.b, B);
    cuda_check(cudaMemcpyAsync(Y, X, x_bytes, cudaMemcpyDeviceToDevice, stream),
               "cudaMemcpyAsync of X");
    prod.left(1.0f, B, X, o.a, Y);
    std::swap(X, Y);
  }
  if (X != x) {
    cuda_check(cudaMemcpyAsync(x, X, x_bytes, cudaMemcpyDeviceToDevice, stream),
               "cudaMemcpyAsync of the result");
  }
}

}  // namespace terse

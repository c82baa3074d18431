// PowerSGD's local passes on the GPU (terse/kernels/cuda_power_sgd.h): the products with cuBLAS,
// Gram-Schmidt, the decompression with the error update, and the flag passes.
#include <cublas_v2.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>

#include "codec_util.cuh"
#include "cublas_util.cuh"
#include "terse/kernels/cuda_power_sgd.h"

namespace terse {

using cuda_codec::check_launch;
using cuda_codec::cublas_check;
using cuda_codec::cublas_handle;
using cuda_codec::cuda_check;

namespace {

constexpr int kMaxDevices = 64;
constexpr int kThreads = 256;

void check_device_index(int device, const char* fn) {
  TERSE_CHECK(device >= 0 && device < kMaxDevices, InvalidArgument, fn, ": device ", device,
              " is out of range; pass a CUDA device index in [0, ", kMaxDevices, ")");
}

// `device` is current for the scope; the previous device is restored after.
class Scope {
 public:
  Scope(int device, const char* fn) : device_(device) {
    check_device_index(device, fn);
    cuda_check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device_) cuda_check(cudaSetDevice(device_), "cudaSetDevice");
  }
  ~Scope() {
    if (previous_ != device_) cudaSetDevice(previous_);
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  int device_;
  int previous_ = 0;
};

void check_dims(const char* fn, int64_t rows, int64_t cols, int64_t r) {
  TERSE_CHECK(
      rows >= 0 && cols >= 0 && r >= 0 && rows <= INT_MAX && cols <= INT_MAX && r <= INT_MAX,
      InvalidArgument, fn, ": a ", rows, "x", cols, " matrix at rank ", r,
      " is out of range; rows, cols and r must be in [0, 2^31) (cuBLAS takes int)");
}

void check_ptr(const void* p, int64_t count, const char* fn, const char* arg) {
  TERSE_CHECK(p != nullptr || count == 0, InvalidArgument, fn, ": ", arg, " is null for ", count,
              " elements; pass device memory");
}

unsigned grid_for(int64_t n) {
  const int64_t wanted = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(wanted < 4096 ? wanted : 4096);
}

// ---- Gram-Schmidt -------------------------------------------------------------------------------

constexpr int kOrthoThreads = 512;
constexpr int kOrthoWarps = kOrthoThreads / 32;
// Later columns whose dot products with column i are reduced together (r <= 17: one group).
constexpr int kOrthoDots = 16;
constexpr int kOrthoBatch = 32;

struct OrthoBatch {
  CudaOrthoMatrix m[kOrthoBatch];
  float eps = 0.0f;
  int eps_is_zero = 1;
};

__device__ __forceinline__ double warp_sum(double v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;
}

// v[k] = its sum over the block for k < count (count is the same in every thread, <= K), in a
// fixed tree order, so a block gives the same bits every run.
template <int K>
__device__ void block_sums(double (&v)[K], int count) {
  __shared__ double part[K][kOrthoWarps];
  __shared__ double total[K];
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
#pragma unroll
  for (int k = 0; k < K; ++k) {
    if (k < count) v[k] = warp_sum(v[k]);
  }
  __syncthreads();  // every thread has read the previous call's totals
  if (lane == 0) {
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (k < count) part[k][warp] = v[k];
    }
  }
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (k < count) {
        double s = lane < kOrthoWarps ? part[k][lane] : 0.0;
        s = warp_sum(s);
        if (lane == 0) total[k] = s;
      }
    }
  }
  __syncthreads();
#pragma unroll
  for (int k = 0; k < K; ++k) {
    if (k < count) v[k] = total[k];
  }
}

// Block b orthogonalizes matrix b, in the CPU's order of operations: per column i, its norm,
// its normalization, then for every later column j the dot product <i, j> and j -= dot * i.
// Thread t owns rows t, t + kOrthoThreads, ... in every pass, so it reads back only what it
// wrote itself and the passes meet only in block_sums; that lets the normalization of column i
// share a pass over the rows with the first dot products, and the next column's sum of squares
// share one with its update.
__global__ void __launch_bounds__(kOrthoThreads) orthogonalize_kernel(OrthoBatch b) {
  const CudaOrthoMatrix mat = b.m[blockIdx.x];
  float* a = mat.data;
  const int64_t n = mat.rows;
  const int64_t r = mat.cols;
  if (r == 0) return;
  double ss[1] = {0.0};  // column i's sum of squares, this thread's rows
  for (int64_t row = threadIdx.x; row < n; row += kOrthoThreads) {
    const double v = a[row * r];
    ss[0] += v * v;
  }
  for (int64_t i = 0; i < r; ++i) {
    block_sums<1>(ss, 1);
    const float norm = static_cast<float>(sqrt(ss[0]));
    const float denom = b.eps_is_zero ? norm : norm + b.eps;
    ss[0] = 0.0;
    if (i + 1 == r) {
      for (int64_t row = threadIdx.x; row < n; row += kOrthoThreads) a[row * r + i] /= denom;
      break;
    }
    for (int64_t j0 = i + 1; j0 < r; j0 += kOrthoDots) {
      const int cnt = static_cast<int>(r - j0 < kOrthoDots ? r - j0 : kOrthoDots);
      const bool first = j0 == i + 1;
      double d[kOrthoDots];
#pragma unroll
      for (int c = 0; c < kOrthoDots; ++c) d[c] = 0.0;
      for (int64_t row = threadIdx.x; row < n; row += kOrthoThreads) {
        float* ar = a + row * r;
        float ai = ar[i];
        if (first) {
          ai /= denom;
          ar[i] = ai;
        }
        const double aid = ai;
#pragma unroll
        for (int c = 0; c < kOrthoDots; ++c) {
          if (c < cnt) d[c] += aid * static_cast<double>(ar[j0 + c]);
        }
      }
      block_sums<kOrthoDots>(d, cnt);
      for (int64_t row = threadIdx.x; row < n; row += kOrthoThreads) {
        float* ar = a + row * r;
        const float ai = ar[i];
#pragma unroll
        for (int c = 0; c < kOrthoDots; ++c) {
          if (c < cnt) ar[j0 + c] -= static_cast<float>(d[c]) * ai;
        }
        if (first) {  // column i + 1 is final now: its sum of squares for the next pass
          const double v = ar[i + 1];
          ss[0] += v * v;
        }
      }
    }
  }
}

// ---- decompression and error update ------------------------------------------------------------

constexpr int kDecompressThreads = 256;
// Blocks a decompression aims for (several per SM): fewer rows per block would reload Q more.
constexpr int64_t kDecompressBlocks = 1024;

// Thread (x, y) handles column j = x of rows y, y + gridDim.y, ... . kR > 0: r <= kR and the
// thread keeps its row of Q in registers; kR == 0: any r, Q read each time.
template <int kR>
__global__ void __launch_bounds__(kDecompressThreads)
    decompress_kernel(float* __restrict__ m, float* __restrict__ e, bool add_error, int64_t rows,
                      int64_t cols, const float* __restrict__ p, const float* __restrict__ q, int r,
                      uint32_t* __restrict__ big) {
  constexpr int kRegs = kR > 0 ? kR : 1;
  const int64_t j = int64_t{blockIdx.x} * kDecompressThreads + threadIdx.x;
  bool bad = false;
  if (j < cols) {
    float qj[kRegs];
    if (kR > 0) {
#pragma unroll
      for (int k = 0; k < kRegs; ++k) qj[k] = k < r ? q[j * r + k] : 0.0f;
    }
    for (int64_t a = blockIdx.y; a < rows; a += gridDim.y) {
      const float* pa = p + a * r;
      float acc = 0.0f;
      if (kR > 0) {
#pragma unroll
        for (int k = 0; k < kRegs; ++k) {
          if (k < r) acc = acc + pa[k] * qj[k];
        }
      } else {
        for (int k = 0; k < r; ++k) acc = acc + pa[k] * q[j * r + k];
      }
      const int64_t idx = a * cols + j;
      if (e != nullptr) {
        const float mv = m[idx];
        const float s = add_error ? mv + e[idx] : mv;
        const float en = s - acc;
        e[idx] = en;
        bad |= !(fabsf(en) < 0x1p103f);
      }
      m[idx] = acc;
    }
  }
  if (__any_sync(0xffffffffu, bad) && (threadIdx.x & 31) == 0) *big = 1u;
}

// ---- flags --------------------------------------------------------------------------------------

template <bool kSum>
__global__ void __launch_bounds__(kThreads)
    nonfinite_kernel(const float* __restrict__ x, const float* __restrict__ y, int64_t n,
                     uint32_t* __restrict__ flag) {
  bool bad = false;
  const int64_t stride = int64_t{gridDim.x} * kThreads;
  for (int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x; i < n; i += stride) {
    const float v = kSum ? x[i] + y[i] : x[i];
    bad |= !isfinite(v);
  }
  if (__any_sync(0xffffffffu, bad) && (threadIdx.x & 31) == 0) *flag = 1u;
}

// One block: column c of q is tested by every thread over its rows, then agreed on.
__global__ void __launch_bounds__(kThreads)
    zero_column_kernel(const float* __restrict__ q, int64_t rows, int64_t cols,
                       uint32_t* __restrict__ flag) {
  for (int64_t c = 0; c < cols; ++c) {
    int nonzero = 0;
    for (int64_t row = threadIdx.x; row < rows; row += kThreads) {
      nonzero |= q[row * cols + c] != 0.0f ? 1 : 0;
    }
    if (__syncthreads_or(nonzero) == 0) {  // the same in every thread: all leave together
      if (threadIdx.x == 0) *flag = 1u;
      return;
    }
  }
}

template <int kR>
void launch_decompress(dim3 grid, float* m, float* e, bool add_error, int64_t rows, int64_t cols,
                       const float* p, const float* q, int r, uint32_t* big) {
  decompress_kernel<kR><<<grid, kDecompressThreads, 0, cudaStreamLegacy>>>(m, e, add_error, rows,
                                                                           cols, p, q, r, big);
}

}  // namespace

namespace {

// y = (M + e) x (transposed false: P = M Q, y rows x r) or (M + e)^T x (true: Q = M^T P, y
// cols x r), as one product per term so that M + e is never stored (e may be null). M and e are
// row-major rows x cols, x and y row-major with r columns; r = 1 takes SGEMV.
void products(const char* fn, int device, const float* m, const float* e, int64_t rows,
              int64_t cols, const float* x, int64_t r, float* y, bool transposed) {
  check_dims(fn, rows, cols, r);
  const int64_t out = transposed ? cols : rows, in = transposed ? rows : cols;
  if (out == 0 || r == 0) return;
  const char* x_name = transposed ? "p" : "q";
  const char* y_name = transposed ? "q" : "p";
  check_ptr(m, rows * cols, fn, "m");
  check_ptr(x, in * r, fn, x_name);
  check_ptr(y, out * r, fn, y_name);
  const Scope scope(device, fn);
  if (in == 0) {  // the empty sum
    cuda_check(
        cudaMemsetAsync(y, 0, sizeof(float) * static_cast<size_t>(out * r), cudaStreamLegacy),
        transposed ? "cudaMemsetAsync of Q" : "cudaMemsetAsync of P");
    return;
  }
  const cublasHandle_t h = cublas_handle(device);
  const float one = 1.0f, zero = 0.0f;
  const int ir = static_cast<int>(r), irows = static_cast<int>(rows),
            icols = static_cast<int>(cols);
  const float* mats[2] = {m, e};
  for (int t = 0; t < 2; ++t) {
    if (mats[t] == nullptr) continue;
    const float* beta = t == 0 ? &zero : &one;
    if (r == 1) {
      // cuBLAS (column-major) sees the row-major M as the cols x rows matrix M^T: M x takes
      // its transpose, M^T x takes it as it is.
      cublas_check(cublasSgemv(h, transposed ? CUBLAS_OP_N : CUBLAS_OP_T, icols, irows, &one,
                               mats[t], icols, x, 1, beta, y, 1),
                   transposed ? "cublasSgemv (Q = M^T P)" : "cublasSgemv (P = M Q)");
    } else if (!transposed) {
      // Column-major: P^T (r x rows) = Q^T (r x cols) M^T (cols x rows).
      cublas_check(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, ir, irows, icols, &one, x, ir, mats[t],
                               icols, beta, y, ir),
                   "cublasSgemm (P = M Q)");
    } else {
      // Column-major: Q^T (r x cols) = P^T (r x rows) M (rows x cols), M being the transpose of
      // the cols x rows matrix cuBLAS sees.
      cublas_check(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, ir, icols, irows, &one, x, ir, mats[t],
                               icols, beta, y, ir),
                   "cublasSgemm (Q = M^T P)");
    }
  }
}

}  // namespace

void cuda_power_sgd_project(int device, const float* m, const float* e, int64_t rows, int64_t cols,
                            const float* q, int64_t r, float* p) {
  products("cuda_power_sgd_project", device, m, e, rows, cols, q, r, p, /*transposed=*/false);
}

void cuda_power_sgd_back_project(int device, const float* m, const float* e, int64_t rows,
                                 int64_t cols, const float* p, int64_t r, float* q) {
  products("cuda_power_sgd_back_project", device, m, e, rows, cols, p, r, q, /*transposed=*/true);
}

void cuda_power_sgd_orthogonalize(int device, const std::vector<CudaOrthoMatrix>& matrices,
                                  double eps) {
  const char* fn = "cuda_power_sgd_orthogonalize";
  TERSE_CHECK(std::isfinite(eps) && eps >= 0.0, InvalidArgument, fn, ": eps is ", eps,
              "; pass a finite eps >= 0");
  for (const CudaOrthoMatrix& mat : matrices) {
    TERSE_CHECK(
        mat.rows >= 0 && mat.cols >= 0 && (mat.cols == 0 || mat.rows <= INT64_MAX / mat.cols),
        InvalidArgument, fn, ": a ", mat.rows, "x", mat.cols, " matrix is out of range");
    check_ptr(mat.data, mat.rows * mat.cols, fn, "data");
  }
  if (matrices.empty()) return;
  const Scope scope(device, fn);
  OrthoBatch batch;
  batch.eps = static_cast<float>(eps);
  batch.eps_is_zero = eps == 0.0 ? 1 : 0;
  for (size_t first = 0; first < matrices.size(); first += kOrthoBatch) {
    const size_t count = std::min<size_t>(kOrthoBatch, matrices.size() - first);
    for (size_t k = 0; k < count; ++k) batch.m[k] = matrices[first + k];
    orthogonalize_kernel<<<static_cast<unsigned>(count), kOrthoThreads, 0, cudaStreamLegacy>>>(
        batch);
    check_launch("the Gram-Schmidt kernel's launch");
  }
}

void cuda_power_sgd_decompress(int device, float* m, float* e, bool add_error, int64_t rows,
                               int64_t cols, const float* p, const float* q, int64_t r,
                               uint32_t* big_error) {
  const char* fn = "cuda_power_sgd_decompress";
  check_dims(fn, rows, cols, r);
  if (rows == 0 || cols == 0) return;
  check_ptr(m, rows * cols, fn, "m");
  check_ptr(p, rows * r, fn, "p");
  check_ptr(q, cols * r, fn, "q");
  TERSE_CHECK(e == nullptr || big_error != nullptr, InvalidArgument, fn,
              ": big_error is null; pass a device word for the error's range flag");
  const Scope scope(device, fn);
  const int64_t gx = (cols + kDecompressThreads - 1) / kDecompressThreads;
  int64_t gy = (kDecompressBlocks + gx - 1) / gx;
  gy = std::min<int64_t>(std::min<int64_t>(gy, rows), 65535);
  const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy));
  const int ir = static_cast<int>(r);
  if (r <= 1) {
    launch_decompress<1>(grid, m, e, add_error, rows, cols, p, q, ir, big_error);
  } else if (r <= 2) {
    launch_decompress<2>(grid, m, e, add_error, rows, cols, p, q, ir, big_error);
  } else if (r <= 4) {
    launch_decompress<4>(grid, m, e, add_error, rows, cols, p, q, ir, big_error);
  } else if (r <= 8) {
    launch_decompress<8>(grid, m, e, add_error, rows, cols, p, q, ir, big_error);
  } else if (r <= 16) {
    launch_decompress<16>(grid, m, e, add_error, rows, cols, p, q, ir, big_error);
  } else {
    launch_decompress<0>(grid, m, e, add_error, rows, cols, p, q, ir, big_error);
  }
  check_launch("the decompression kernel's launch");
}

void cuda_power_sgd_flag_nonfinite(int device, const float* x, int64_t n, uint32_t* flag) {
  const char* fn = "cuda_power_sgd_flag_nonfinite";
  TERSE_CHECK(n >= 0, InvalidArgument, fn, ": n is ", n, "; pass n >= 0");
  if (n == 0) return;
  check_ptr(x, n, fn, "x");
  check_ptr(flag, 1, fn, "flag");
  const Scope scope(device, fn);
  nonfinite_kernel<false><<<grid_for(n), kThreads, 0, cudaStreamLegacy>>>(x, nullptr, n, flag);
  check_launch("the finite check's launch");
}

void cuda_power_sgd_flag_nonfinite_sum(int device, const float* x, const float* y, int64_t n,
                                       uint32_t* flag) {
  const char* fn = "cuda_power_sgd_flag_nonfinite_sum";
  TERSE_CHECK(n >= 0, InvalidArgument, fn, ": n is ", n, "; pass n >= 0");
  if (n == 0) return;
  check_ptr(x, n, fn, "x");
  check_ptr(y, n, fn, "y");
  check_ptr(flag, 1, fn, "flag");
  const Scope scope(device, fn);
  nonfinite_kernel<true><<<grid_for(n), kThreads, 0, cudaStreamLegacy>>>(x, y, n, flag);
  check_launch("the finite check's launch");
}

void cuda_power_sgd_flag_zero_column(int device, const float* q, int64_t rows, int64_t cols,
                                     uint32_t* flag) {
  const char* fn = "cuda_power_sgd_flag_zero_column";
  TERSE_CHECK(rows >= 0 && cols >= 0, InvalidArgument, fn, ": a ", rows, "x", cols,
              " matrix; pass rows, cols >= 0");
  if (cols == 0) return;
  check_ptr(q, rows * cols, fn, "q");
  check_ptr(flag, 1, fn, "flag");
  const Scope scope(device, fn);
  zero_column_kernel<<<1, kThreads, 0, cudaStreamLegacy>>>(q, rows, cols, flag);
  check_launch("the zero-column check's launch");
}

void cuda_power_sgd_wait(int device) {
  const Scope scope(device, "cuda_power_sgd_wait");
  cuda_check(cudaStreamSynchronize(cudaStreamLegacy), "cudaStreamSynchronize (PowerSGD)");
}

bool cuda_power_sgd_is_device_memory(const void* p, int device) {
  if (p == nullptr) return false;
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();  // clear it, so that the next call's check does not report it
    return false;
  }
  return attr.type == cudaMemoryTypeManaged ||
         (attr.type == cudaMemoryTypeDevice && attr.device == device);
}

CudaCurrentDevice::CudaCurrentDevice(int device) {
  check_device_index(device, "CudaCurrentDevice");
  int previous = 0;
  cuda_check(cudaGetDevice(&previous), "cudaGetDevice");
  if (previous != device) cuda_check(cudaSetDevice(device), "cudaSetDevice");
  previous_ = previous;
}

CudaCurrentDevice::~CudaCurrentDevice() {
  int current = 0;
  if (previous_ >= 0 && cudaGetDevice(&current) == cudaSuccess && current != previous_) {
    cudaSetDevice(previous_);
  }
}

}  // namespace terse

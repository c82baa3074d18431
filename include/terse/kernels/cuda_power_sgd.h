#pragma once

// PowerSGD's local passes on the GPU (terse::PowerSgd runs them for CUDA gradients; the
// algorithm, its options and the CPU's loops: terse/comm/algorithms/power_sgd.h). Matrices are
// row-major f32 in the memory of CUDA device `device`: M and e are rows x cols, P is rows x r,
// Q is cols x r. Every call enqueues its work on the legacy default stream of `device` (where
// libtorch and terse's other kernels run, so it is ordered with them) and returns without
// waiting; flags are device words that a call sets to 1 (and never clears: zero them first).
// A build without CUDA throws CudaError from each, saying so.
//
// The products use cuBLAS (SGEMV for r = 1, else SGEMM): one handle per device, made at the
// first product there and kept for the life of the process, bound to the legacy default
// stream, default math mode (f32 products in f32, no TF32). cuBLAS sums in another order than
// the CPU's loop and fuses multiply-adds, so P and Q differ from the CPU's in the last bits;
// docs/collectives.md ("On the GPU") gives the tolerance this leaves on the result. The
// orthogonalization sums in double as the CPU does (in a tree instead of one after the other),
// and the decompression sums over k in the CPU's order without fused multiply-adds: given the
// same P and Q it writes the CPU's bits.
//
// Errors: InvalidArgument for a negative or too large size (cuBLAS takes int: rows, cols and r
// must be below 2^31) or a null pointer for a non-empty matrix; CudaError when the CUDA runtime
// or cuBLAS fails.

#include <cstdint>
#include <vector>

namespace terse {

// p = m q, plus e q when e is not null (two products: the sum of M + e is never stored).
void cuda_power_sgd_project(int device, const float* m, const float* e, int64_t rows, int64_t cols,
                            const float* q, int64_t r, float* p);

// q = m^T p, plus e^T p when e is not null.
void cuda_power_sgd_back_project(int device, const float* m, const float* e, int64_t rows,
                                 int64_t cols, const float* p, int64_t r, float* q);

// One matrix for cuda_power_sgd_orthogonalize: rows x cols, row-major, its columns orthogonalized
// in place.
struct CudaOrthoMatrix {
  float* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
};

// Modified Gram-Schmidt over the columns of every matrix, as the CPU's orthogonalize
// (power_sgd.cc): for i = 0 .. cols - 1, column i /= (f32(sqrt(sum of squares in double)) + eps)
// (eps == 0: /= the norm alone; an all-zero column then gives NaN, as on the CPU), then every
// later column j -= f32(<column i, column j> summed in double) * column i. One thread block per
// matrix (they are small: r columns), all matrices in one launch per 32.
void cuda_power_sgd_orthogonalize(int device, const std::vector<CudaOrthoMatrix>& matrices,
                                  double eps);

// The decompression and error update of one matrix, element by element:
//   a_ij = sum over k = 0 .. r - 1, in order, of p_ik q_jk     (f32, from 0, no FMA)
//   when e is not null:  s = add_error ? m_ij + e_ij : m_ij;  e_ij = s - a_ij;
//                        *big_error = 1 when some new e_ij is not below 2^103 in magnitude (NaN
//                        included): only then can a later m + e overflow with m finite
//   m_ij = a_ij
void cuda_power_sgd_decompress(int device, float* m, float* e, bool add_error, int64_t rows,
                               int64_t cols, const float* p, const float* q, int64_t r,
                               uint32_t* big_error);

// *flag = 1 when x[0, n) holds a NaN or an Inf.
void cuda_power_sgd_flag_nonfinite(int device, const float* x, int64_t n, uint32_t* flag);
// *flag = 1 when some f32 sum x[i] + y[i] is NaN or Inf (it overflows although both are finite
// only when some |y[i]| >= 2^103: see big_error above).
void cuda_power_sgd_flag_nonfinite_sum(int device, const float* x, const float* y, int64_t n,
                                       uint32_t* flag);
// *flag = 1 when a column of the rows x cols matrix q is all zero (every entry == 0.0f).
void cuda_power_sgd_flag_zero_column(int device, const float* q, int64_t rows, int64_t cols,
                                     uint32_t* flag);

// Waits for the work enqueued on the legacy default stream of `device`.
void cuda_power_sgd_wait(int device);

// True when p is device (or managed) memory that `device` can address as its own: what the
// algorithm checks of a CUDA view before launching anything on it. False in a build without CUDA.
bool cuda_power_sgd_is_device_memory(const void* p, int device);

// Makes `device` the current CUDA device for the object's lifetime (copies and collectives of
// the algorithm then run there), and restores the previous one.
class CudaCurrentDevice {
 public:
  explicit CudaCurrentDevice(int device);
  ~CudaCurrentDevice();
  CudaCurrentDevice(const CudaCurrentDevice&) = delete;
  CudaCurrentDevice& operator=(const CudaCurrentDevice&) = delete;

 private:
  int previous_ = -1;
};

}  // namespace terse

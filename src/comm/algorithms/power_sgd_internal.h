#pragma once

// Internal to PowerSgd: what its CPU path (power_sgd.cc) and its GPU path (power_sgd_device.cc)
// share.

#include <cstdint>
#include <string>
#include <vector>

#include "staged_collectives.h"
#include "terse/comm/algorithms/power_sgd.h"
#include "terse/comm/reduce_op.h"
#include "terse/kernels/cuda_buffer.h"

namespace terse {

// The two fused buffers of a compressed step: P_i of the compressed matrices (then, on the CPU,
// nothing else: the verdicts travel alone); Q_i of the compressed matrices, then the dense
// tensors. Offsets in floats, per tensor (0 where the buffer holds none of it).
struct PowerSgd::Layout {
  std::vector<int64_t> poff, qoff;
  int64_t psize = 0, qsize = 0;
  int64_t total = 0;           // elements of all tensors
  int64_t dense_elements = 0;  // elements of the tensors that go dense
  int64_t compressed = 0;      // matrices compressed
  uint64_t payload = 0;        // this rank's contribution in bytes (PowerSgdReport)
};

// Q and e of every slot (index as slots_) on CUDA device `device`, and the GPU path's work
// buffers. A CudaBuffer without data means "none yet", as an empty vector does on the CPU.
struct PowerSgd::DeviceState {
  int device = 0;
  std::vector<CudaBuffer> q, error;
  // What a compressed step leaves for the next (2 words per slot, read back at its start):
  // [i] != 0 when Q_i has an all-zero column (then redrawn, as on the CPU); [count + i] != 0
  // when some |e_i| >= 2^103 or is not finite, the only case where M + e can overflow with M
  // finite, so that only then the next step checks M + e element by element.
  CudaBuffer carry;
  // Work: the fused P and Q buffers (the dense step's fused buffer is qbuf), per-tensor flags
  // (+ 1 word for the sum of P), the verdicts on a communicator of GPU memory.
  CudaBuffer pbuf, qbuf, flags, verdicts;
};

namespace power_sgd_detail {

// Per-rank verdict slot in the first collective: 0 fine, kFlagBadArguments bad arguments, 1 + i
// non-finite values in tensor i (exact in f32 for i < 2^24; only rank r writes slot r, so the
// sum is exact).
constexpr float kFlagBadArguments = -1.0f;

std::string shape_str(int64_t rows, int64_t cols);
// Modified Gram-Schmidt over the r columns of the row-major n x r matrix `a`, as torch's
// _orthogonalize_gram_schmidt (power_sgd.cc; the GPU parity test's reference).
void orthogonalize(float* a, int64_t n, int64_t r, double eps);
// True when a column of the row-major cols x r matrix q is all zero.
bool has_zero_column(const float* q, int64_t cols, int64_t r);
// True when some e[i] is not below 2^103 in magnitude (NaN included): see DeviceState::carry.
bool error_may_overflow(const float* e, int64_t n);

// Collectives of host arrays on any communicator (staged_collectives.h).
using algorithms_detail::host_all_gather;
using algorithms_detail::host_all_gatherv;
using algorithms_detail::host_all_reduce;

// The report of a dense step over `total` elements on `world` ranks.
PowerSgdReport dense_report(int64_t total, int world, uint64_t extra_bytes);

// The checks after the P all-reduce, with the CPU's messages: the sum of P is finite on every
// rank alike; tensor i's P is finite after Gram-Schmidt.
void check_p_sum_finite(bool finite, int rank);
void check_p_orthogonalized(bool finite, int rank, size_t i, int64_t rows, int64_t cols,
                            double eps);

}  // namespace power_sgd_detail
}  // namespace terse

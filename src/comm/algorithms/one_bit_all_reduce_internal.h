#pragma once

// What OneBitAllReduce's CPU path (one_bit_all_reduce.cc) and its GPU path
// (one_bit_all_reduce_device.cc) share: the flags, the summation order of the scales, the checks
// of the peers' scales and the report. Internal to terse_comm_algorithms.

#include <cstdint>
#include <string>
#include <vector>

#include "terse/comm/algorithms/one_bit_all_reduce.h"
#include "terse/kernels/cuda_buffer.h"
#include "terse/kernels/cuda_one_bit_all_reduce.h"

namespace terse {

namespace one_bit_detail {

// Sentinels a rank sends instead of its worker scale (a real scale is finite and >= 0).
constexpr float kFlagBadArguments = -1.0f;
constexpr float kFlagNonFinite = -2.0f;
// Elements of one norm block (the header's summation order); the GPU passes use the same.
constexpr int64_t kBlock = kOneBitNormBlock;

inline int64_t blocks_of(int64_t count) { return (count + kBlock - 1) / kBlock; }

// A block's 8 lane sums combined in the documented order.
inline double combine_lanes(const double* l) {
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

// ||v||^2 from per-block sums, added in block order (0 + b_0 is b_0 exactly: b_0 >= 0).
inline double sum_blocks(const double* block_sums, int64_t blocks) {
  double ss = 0.0;
  for (int64_t b = 0; b < blocks; ++b) ss += block_sums[b];
  return ss;
}

// ||v||^2 from 8 lane sums per block (the GPU passes' output), combined as the CPU's blocks.
double sum_lane_blocks(const double* lane_sums, int64_t blocks);

// The scale ||v|| / sqrt(count), rounded once to f32.
float scale_of(double sum_sq, int64_t count);

uint32_t bits_of(float f);

// "" when `inout` is a valid argument of a call on a buffer of `numel` elements over `comm`;
// else what is wrong and what to do. A CUDA view must be memory of its device, and of the
// communicator's device when that moves GPU memory.
std::string check_input(const TensorView& inout, int64_t numel, const Communicator& comm);

// The first collective: this rank's worker scale (or flag) to all_scales (W floats, host memory)
// on every rank; through two floats of `staging` (grown as needed) on a communicator of GPU
// memory.
void gather_scale(Communicator& c, float mine, float* all_scales, CudaBuffer& staging);

// After the first collective: throws InvalidArgument (this rank's arg_error), CommError (a rank
// passed bad arguments), NumericalError (a rank's input was not finite) or CorruptData (a worker
// scale is not finite or negative), naming the ranks; returns when every scale is good.
void check_worker_scales(const float* scales, int world, int me, const std::string& arg_error);
// After the server scales' all-gather: CorruptData naming the rank whose scale is bad.
void check_server_scales(const float* scales, int world, int me);

// The report of one call; `collectives` as issued.
OneBitAllReduceReport make_report(int64_t numel, int64_t padded, int world, int collectives,
                                  bool pairwise_payload);

}  // namespace one_bit_detail

// The errors and scratch of OneBitAllReduce on one GPU (one_bit_all_reduce_device.cc).
struct OneBitAllReduce::DeviceState {
  int device = 0;
  CudaBuffer worker_error;  // N floats
  CudaBuffer server_error;  // N / W floats
  CudaBuffer server_sum;    // N / W floats
  CudaBuffer signs;         // N / 8 bytes: this rank's signs, chunk j for rank j
  CudaBuffer received;      // N / 8: the W chunks of phase 1
  CudaBuffer server_signs;  // N / (8 W)
  CudaBuffer gathered;      // N / 8: every server's signs
  CudaBuffer lane_sums;     // 8 doubles per norm block of N
  // Floats: [0] this rank's worker scale, [1, W] the gathered ones, [W + 1] this rank's server
  // scale, [W + 2, 2W + 1] the gathered ones, [2W + 2, 3W + 1] the server's weights s_w^j / W.
  CudaBuffer scales;
  std::vector<double> host_lane_sums;

  DeviceState(int device, int64_t padded, int world);
};

}  // namespace terse

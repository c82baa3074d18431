#pragma once

#include <cstdint>

namespace terse {

// The element-wise passes of OneBitAllReduce (terse/comm/algorithms/one_bit_all_reduce.h) on the
// GPU, bit for bit the CPU's: the same f32 operations per element (built without FMA
// contraction), the same sign convention (bit 1 iff x >= 0, -0 counts as positive, most
// significant bit first) and the same sums of squares per norm block of kOneBitNormBlock elements
// (8 double lanes, lane i mod 8 in index order; the caller combines the lanes and the blocks on
// the host with the CPU's code). Every pointer is memory of GPU `device`; n and chunk are
// multiples of 8. The work is enqueued on the legacy default stream of `device` and the calls
// return without waiting (a cuda_copy of the lane sums waits for them). A build without CUDA
// throws CudaError from each.

constexpr int64_t kOneBitNormBlock = int64_t{1} << 16;

// Pass 1 over i < n: x_i = (i < numel ? m[i] : 0.0f) + e[i]; signs[i / 8] holds the signs of x;
// lane_sums[8 b + k] = sum of double(x_i)^2 over the i of norm block b with i mod 8 = k.
void cuda_one_bit_worker_pass(int device, const float* m, int64_t numel, const float* e, int64_t n,
                              uint8_t* signs, double* lane_sums);

// e[i] <- x_i - (+-s) with the sign of x_i (x_i as in pass 1), s the f32 of bits s_bits.
void cuda_one_bit_worker_error(int device, const float* m, int64_t numel, float* e, int64_t n,
                               uint32_t s_bits);

// The server's sum over its chunk of `chunk` elements, from the W = world sign chunks of
// chunk / 8 bytes in `received` (rank j's at j * chunk / 8) and the weights c[j] (W floats on the
// device): y_i = ((0 + (+-c_0)) + (+-c_1) ... + (+-c_{W-1})) + es[i]; ssigns and lane_sums of y
// as in pass 1.
void cuda_one_bit_server_pass(int device, const uint8_t* received, const float* c, int world,
                              const float* es, int64_t chunk, float* y, uint8_t* ssigns,
                              double* lane_sums);

// es[i] <- y[i] - (+-ss) with the sign of y[i], ss the f32 of bits ss_bits.
void cuda_one_bit_server_error(int device, const float* y, float* es, int64_t chunk,
                               uint32_t ss_bits);

// The decode: out[i] = +-scales[i / chunk] by bit i of `gathered`, for i < numel. With e not
// null, first (per element, reading out as the input m) e[i] <- x_i - (+-s) for every i < n, as
// cuda_one_bit_worker_error does (the deferred worker error). scales: W floats on the device.
void cuda_one_bit_decode(int device, const uint8_t* gathered, const float* scales, int64_t chunk,
                         float* out, int64_t numel, float* e, int64_t n, uint32_t s_bits);

}  // namespace terse

// OneBitAllReduce's element-wise passes on the GPU (terse/kernels/cuda_one_bit_all_reduce.h), bit
// for bit those of src/comm/algorithms/one_bit_all_reduce.cc. Built with -fmad=false: the sums of
// squares are a multiply then an add, as on the CPU.
#include <cuda_runtime.h>

#include <cstdint>

#include "codec_util.cuh"
#include "terse/kernels/cuda_one_bit_all_reduce.h"
#include "terse/kernels/cuda_power_sgd.h"

namespace terse {

using cuda_codec::blocks_for;
using cuda_codec::check_launch;

namespace {

constexpr int kThreads = 256;
constexpr int64_t kGroups = kOneBitNormBlock / 8;  // groups of 8 elements (one sign byte) a block

// +-s: s (>= 0, or -0 from a peer) with the sign bit set where `negative`, as the CPU's signed8
// and subtract_signed8 build it (no multiply).
__device__ __forceinline__ float signed_scale(uint32_t s_bits, bool negative) {
  return __uint_as_float(s_bits | (negative ? 0x80000000u : 0u));
}

// sgn(x) < 0 as the CPU's !(x >= 0): -0 is positive, NaN negative.
__device__ __forceinline__ bool negative(float x) { return !(x >= 0.0f); }

// x_i = m_i + e_i, m = 0 past numel (the padding).
struct WorkerX {
  const float* m;
  int64_t numel;
  const float* e;
  __device__ __forceinline__ float operator()(int64_t i) const {
    return (i < numel ? m[i] : 0.0f) + e[i];
  }
  __device__ __forceinline__ void keep(int64_t, float) const {}
};

// y_i = ((0 + (+-c_0)) + ... + (+-c_{W-1})) + es_i, kept in y.
struct ServerY {
  const uint8_t* received;
  const float* c;
  int world;
  int64_t chunk_bytes;
  const float* es;
  float* y;
  __device__ __forceinline__ float operator()(int64_t i) const {
    const int64_t byte = i >> 3;
    const unsigned shift = 7u - static_cast<unsigned>(i & 7);
    float acc = 0.0f;  // 0 + (+-c_0) keeps the CPU's +0 for c_0 = 0
    for (int j = 0; j < world; ++j) {
      const bool neg = ((received[j * chunk_bytes + byte] >> shift) & 1u) == 0;
      acc = acc + signed_scale(__float_as_uint(c[j]), neg);
    }
    return acc + es[i];
  }
  __device__ __forceinline__ void keep(int64_t i, float v) const { y[i] = v; }
};

// Thread t: lane k = t % 8 of norm block b = t / 8, its elements i = k mod 8 in index order (the
// CPU's lane). The 8 lanes of a block are 8 consecutive threads of one warp, so at each step they
// hold the 8 elements of one sign byte: a ballot packs it. Warps run whole (the ballots need
// every thread), all past the last block leave at once.
template <typename Source>
__global__ void __launch_bounds__(kThreads)
    norm_signs_kernel(Source src, int64_t n, uint8_t* __restrict__ signs,
                      double* __restrict__ lane_sums) {
  const int64_t t = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  const int64_t blocks = (n + kOneBitNormBlock - 1) / kOneBitNormBlock;
  if ((t & ~int64_t{31}) / 8 >= blocks) return;
  const int64_t b = t / 8;
  const int k = static_cast<int>(t % 8);
  const int64_t begin = b * kOneBitNormBlock;
  const int64_t end =
      b < blocks ? (n < begin + kOneBitNormBlock ? n : begin + kOneBitNormBlock) : begin;
  const unsigned base = threadIdx.x & 24u;  // this thread's group of 8 within the warp
  double s = 0.0;
  for (int64_t g = 0; g < kGroups; ++g) {
    const int64_t i = begin + 8 * g + k;
    const bool in = i < end;  // n is a multiple of 8: a group is all in or all out
    if (__all_sync(0xffffffffu, !in)) break;
    float x = 0.0f;
    if (in) {
      x = src(i);
      src.keep(i, x);
      const double d = x;
      s += d * d;
    }
    const unsigned pos = __ballot_sync(0xffffffffu, in && !negative(x));
    // Bit k of (pos >> base) is lane k; the wire wants it at bit 7 - k.
    if (in && k == 0) signs[i >> 3] = static_cast<uint8_t>(__brev((pos >> base) & 0xffu) >> 24);
  }
  if (b < blocks) lane_sums[t] = s;
}

__global__ void __launch_bounds__(kThreads)
    worker_error_kernel(WorkerX src, float* e, int64_t n, uint32_t s_bits) {
  const int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (i >= n) return;
  const float x = src(i);
  e[i] = x - signed_scale(s_bits, negative(x));
}

__global__ void __launch_bounds__(kThreads)
    server_error_kernel(const float* __restrict__ y, float* __restrict__ es, int64_t chunk,
                        uint32_t ss_bits) {
  const int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (i >= chunk) return;
  const float v = y[i];
  es[i] = v - signed_scale(ss_bits, negative(v));
}

// Element i reads out[i] and e[i] before it writes them: no other thread touches element i.
__global__ void __launch_bounds__(kThreads)
    decode_kernel(const uint8_t* __restrict__ gathered, const float* __restrict__ scales,
                  int64_t chunk, float* out, int64_t numel, float* e, int64_t n, uint32_t s_bits) {
  const int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (i >= (e != nullptr ? n : numel)) return;
  if (e != nullptr) {
    const float x = (i < numel ? out[i] : 0.0f) + e[i];
    e[i] = x - signed_scale(s_bits, negative(x));
  }
  if (i < numel) {
    const bool neg = ((gathered[i >> 3] >> (7u - static_cast<unsigned>(i & 7))) & 1u) == 0;
    out[i] = signed_scale(__float_as_uint(scales[i / chunk]), neg);
  }
}

template <typename Source>
void launch_norm_signs(int device, const Source& src, int64_t n, uint8_t* signs, double* lane_sums,
                       const char* what) {
  if (n <= 0) return;
  const CudaCurrentDevice current(device);
  const int64_t blocks = (n + kOneBitNormBlock - 1) / kOneBitNormBlock;
  norm_signs_kernel<<<blocks_for(8 * blocks, kThreads), kThreads>>>(src, n, signs, lane_sums);
  check_launch(what);
}

}  // namespace

void cuda_one_bit_worker_pass(int device, const float* m, int64_t numel, const float* e, int64_t n,
                              uint8_t* signs, double* lane_sums) {
  launch_norm_signs(device, WorkerX{m, numel, e}, n, signs, lane_sums,
                    "the 1-bit worker pass launch");
}

void cuda_one_bit_worker_error(int device, const float* m, int64_t numel, float* e, int64_t n,
                               uint32_t s_bits) {
  if (n <= 0) return;
  const CudaCurrentDevice current(device);
  worker_error_kernel<<<blocks_for(n, kThreads), kThreads>>>(WorkerX{m, numel, e}, e, n, s_bits);
  check_launch("the 1-bit worker error launch");
}

void cuda_one_bit_server_pass(int device, const uint8_t* received, const float* c, int world,
                              const float* es, int64_t chunk, float* y, uint8_t* ssigns,
                              double* lane_sums) {
  launch_norm_signs(device, ServerY{received, c, world, chunk / 8, es, y}, chunk, ssigns, lane_sums,
                    "the 1-bit server pass launch");
}

void cuda_one_bit_server_error(int device, const float* y, float* es, int64_t chunk,
                               uint32_t ss_bits) {
  if (chunk <= 0) return;
  const CudaCurrentDevice current(device);
  server_error_kernel<<<blocks_for(chunk, kThreads), kThreads>>>(y, es, chunk, ss_bits);
  check_launch("the 1-bit server error launch");
}

void cuda_one_bit_decode(int device, const uint8_t* gathered, const float* scales, int64_t chunk,
                         float* out, int64_t numel, float* e, int64_t n, uint32_t s_bits) {
  const int64_t count = e != nullptr ? n : numel;
  if (count <= 0) return;
  const CudaCurrentDevice current(device);
  decode_kernel<<<blocks_for(count, kThreads), kThreads>>>(gathered, scales, chunk, out, numel, e,
                                                           n, s_bits);
  check_launch("the 1-bit decode launch");
}

}  // namespace terse

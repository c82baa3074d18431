// OneBit and ScaledSign bodies on the GPU (terse/kernels/cuda_sign_codec.h), bit for bit the
// CPU's (src/compress/one_bit.cc, scaled_sign.cc).
#include <cub/block/block_reduce.cuh>

#include <cmath>

#include "codec_util.cuh"
#include "fixed_sum.cuh"
#include "seq_sum.cuh"
#include "terse/kernels/cuda_sign_codec.h"

namespace terse {

using namespace cuda_codec;

namespace {

constexpr int kThreads = 256;
// OneBit's CPU loop: blocks of 2048 elements, 16 float lanes per block (element i of a block
// into lane i % 16, the block's tail after the last whole 16 into lane 0), the lanes then added
// in double in block order, lane 0 to 15.
constexpr int64_t kOneBitBlock = 2048;
constexpr int kLanes = 16;

// [x >= 0] from the bits: sign clear, or -0 (as the CPU's nonneg_bit).
__device__ __forceinline__ uint32_t nonneg_bit(float x) {
  const auto u = static_cast<uint32_t>(__float_as_uint(x));
  return 1u - ((u >> 31) & static_cast<uint32_t>(u != 0x80000000u));
}

// One thread per (block, lane): the lane's float sums of the negative and the non-negative
// elements, in the CPU's order and with its operations.
__global__ void __launch_bounds__(kThreads)
    onebit_lanes_kernel(const float* __restrict__ x, int64_t n, int64_t lanes,
                        float* __restrict__ neg, float* __restrict__ pos,
                        unsigned long long* __restrict__ count_neg) {
  using Reduce = cub::BlockReduce<unsigned, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  const int64_t t = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  unsigned cnt = 0;
  if (t < lanes) {
    const int64_t b0 = (t / kLanes) * kOneBitBlock;
    const int j = static_cast<int>(t % kLanes);
    const int64_t len = n - b0 < kOneBitBlock ? n - b0 : kOneBitBlock;
    const float* v = x + b0;
    float ng = 0.0f, ps = 0.0f;
    auto step = [&](float e) {
      const uint32_t is_neg = 1u - nonneg_bit(e);
      const float q = e * static_cast<float>(is_neg);
      ng += q;
      ps += e - q;
      cnt += is_neg;
    };
    const int64_t vec = len / kLanes;
    for (int64_t k = 0; k < vec; ++k) step(v[kLanes * k + j]);
    if (j == 0) {
      for (int64_t i = kLanes * vec; i < len; ++i) step(v[i]);
    }
    neg[t] = ng;
    pos[t] = ps;
  }
  const unsigned total = Reduce(tmp).Sum(cnt);
  if (threadIdx.x == 0 && total != 0) atomicAdd(count_neg, static_cast<unsigned long long>(total));
}

struct NonNegBit {
  __device__ uint32_t operator()(float v) const { return nonneg_bit(v); }
};

// Thread g packs elements [8g, 8g + 8) into byte g, MSB first.
template <typename Bit>
__global__ void __launch_bounds__(kThreads)
    pack_bits_kernel(const float* __restrict__ x, int64_t n, uint8_t* __restrict__ out, Bit bit) {
  const int64_t g = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (8 * g >= n) return;
  put_group(out, n, g, 1, [&](int64_t i) { return bit(x[i]); });
}

// ScaledSign's scale float(l1 / n) from the fixed-order sum, into the body and into *scale.
__global__ void sign_scale_kernel(const double* __restrict__ l1, int64_t n,
                                  uint8_t* __restrict__ body, float* __restrict__ scale) {
  const float s = static_cast<float>(*l1 / static_cast<double>(n));
  *scale = s;
  const uint32_t b = __float_as_uint(s);
  for (int i = 0; i < 4; ++i) body[i] = static_cast<uint8_t>(b >> (8 * i));
}

// out[i] (=|+=) bit_i ? v1 : v0.
__global__ void __launch_bounds__(kThreads)
    unpack_bits_kernel(const uint8_t* __restrict__ bits, int64_t n, float v0, float v1,
                       float* __restrict__ out, bool accumulate) {
  const int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (i >= n) return;
  const float v = (bits[i >> 3] >> (7 - (i & 7))) & 1u ? v1 : v0;
  out[i] = accumulate ? out[i] + v : v;
}

template <typename Bit>
void pack(const float* x, int64_t n, uint8_t* out, Bit bit, const char* what) {
  const int64_t groups = (n + 7) / 8;
  if (groups == 0) return;
  pack_bits_kernel<<<blocks_for(groups, kThreads), kThreads>>>(x, n, out, bit);
  check_launch(what);
}

void unpack(const uint8_t* bits, int64_t n, float v0, float v1, float* out, bool accumulate) {
  if (n == 0) return;
  unpack_bits_kernel<<<blocks_for(n, kThreads), kThreads>>>(bits, n, v0, v1, out, accumulate);
  check_launch("unpack_bits_kernel launch");
}

void check_encode_args(const float* x, int64_t n, const uint8_t* body, size_t cap, size_t need,
                       const char* fn) {
  check_numel(n, fn);
  check_cap(cap, need, n, fn);
  check_device_ptr(x, n, fn, "x");
  check_device_ptr(body, static_cast<int64_t>(need), fn, "body");
}

void check_decode_args(const uint8_t* body, size_t body_bytes, const float* out, int64_t n,
                       const char* fn) {
  check_numel(n, fn);
  check_device_ptr(body, static_cast<int64_t>(body_bytes), fn, "body");
  check_device_ptr(out, n, fn, "out");
}

}  // namespace

size_t cuda_onebit_body_bytes(int64_t n) {
  check_numel(n, "cuda_onebit_body_bytes");
  return 8 + packed_bytes(n, 1);
}

size_t cuda_onebit_encode(const float* x, int64_t n, uint8_t* body, size_t body_cap) {
  const size_t need = cuda_onebit_body_bytes(n);
  check_encode_args(x, n, body, body_cap, need, "cuda_onebit_encode");
  const int64_t lanes = (n + kOneBitBlock - 1) / kOneBitBlock * kLanes;
  uint64_t count_neg = 0;
  double sum_neg = 0.0, sum_pos = 0.0;
  bool finite = true;
  if (n > 0) {
    auto* neg = static_cast<float*>(scratch(Scratch::kPartials, lanes * sizeof(float)));
    auto* pos = static_cast<float*>(scratch(Scratch::kPartials2, lanes * sizeof(float)));
    auto* count = static_cast<unsigned long long*>(scratch(Scratch::kIndices, sizeof(uint64_t)));
    cuda_check(cudaMemsetAsync(count, 0, sizeof(uint64_t)), "cudaMemsetAsync");
    onebit_lanes_kernel<<<blocks_for(lanes, kThreads), kThreads>>>(x, n, lanes, neg, pos, count);
    check_launch("onebit_lanes_kernel launch");
    pack(x, n, body + 8, NonNegBit{}, "onebit pack_bits_kernel launch");
    // The negative lanes hold sums of values <= 0: rounding is symmetric, so the CPU's sum of
    // them is minus the sum of their magnitudes (and non-zero whenever count_neg > 0).
    const SeqSum sn = cuda_sequential_sum(neg, lanes, SumTerm::kAbs);
    const SeqSum sp = cuda_sequential_sum(pos, lanes, SumTerm::kAbs);
    to_host(&count_neg, count, sizeof count_neg, "copy of the negative count");
    sum_neg = -sn.sum;
    sum_pos = sp.sum;
    finite = sn.finite && sp.finite;
  }
  const auto cn = static_cast<int64_t>(count_neg);
  const int64_t cp = n - cn;
  const auto mean_neg = static_cast<float>(cn > 0 ? sum_neg / static_cast<double>(cn) : 0.0);
  const auto mean_pos = static_cast<float>(cp > 0 ? sum_pos / static_cast<double>(cp) : 0.0);
  TERSE_CHECK(finite && std::isfinite(mean_neg) && std::isfinite(mean_pos), NumericalError,
              "cuda_onebit_encode: the reconstruction means are not finite (", mean_neg, ", ",
              mean_pos,
              "); the gradient holds NaN or Inf (lower the learning rate or check the loss)");
  uint8_t head[8];
  put_f32(head, mean_neg);
  put_f32(head + 4, mean_pos);
  to_device(body, head, sizeof head, "copy of the onebit means");
  return need;
}

void cuda_onebit_decode(const uint8_t* body, size_t body_bytes, float* out, int64_t n,
                        bool accumulate) {
  check_decode_args(body, body_bytes, out, n, "cuda_onebit_decode");
  check_body_bytes(body_bytes, 8 + packed_bytes(n, 1), n, "onebit");
  uint8_t head[8];
  to_host(head, body, sizeof head, "copy of the onebit means");
  float mean_neg = 0.0f;
  float mean_pos = 0.0f;
  checked_onebit_means(head, mean_neg, mean_pos);
  check_padding(body, body_bytes, static_cast<uint64_t>(n), "onebit bit");
  unpack(body + 8, n, mean_neg, mean_pos, out, accumulate);
}

size_t cuda_scaled_sign_body_bytes(int64_t n) {
  check_numel(n, "cuda_scaled_sign_body_bytes");
  return 4 + packed_bytes(n, 1);
}

size_t cuda_scaled_sign_encode(const float* x, int64_t n, uint8_t* body, size_t body_cap) {
  const size_t need = cuda_scaled_sign_body_bytes(n);
  check_encode_args(x, n, body, body_cap, need, "cuda_scaled_sign_encode");
  float scale = 0.0f;
  if (n > 0) {
    // One pass over x: the lane partials of ||x||_1 and the sign bits; then the tree, the scale.
    auto* l1 = static_cast<double*>(scratch(Scratch::kFlags, 2 * sizeof(double)));
    auto* dev_scale = reinterpret_cast<float*>(l1 + 1);
    enqueue_fixed_sum(x, n, fixed_sum::Term::kAbs, l1, body + 4);
    sign_scale_kernel<<<1, 1>>>(l1, n, body, dev_scale);
    check_launch("sign_scale_kernel launch");
    to_host(&scale, dev_scale, sizeof scale, "copy of the sign scale");
  } else {
    uint8_t head[4];
    put_f32(head, scale);
    to_device(body, head, sizeof head, "copy of the sign scale");
  }
  TERSE_CHECK(std::isfinite(scale), NumericalError,
              "cuda_scaled_sign_encode: the scale ||x||_1/n is ", scale,
              "; the gradient holds NaN or Inf (lower the learning rate or check the loss)");
  return need;
}

void cuda_scaled_sign_decode(const uint8_t* body, size_t body_bytes, float* out, int64_t n,
                             bool accumulate) {
  check_decode_args(body, body_bytes, out, n, "cuda_scaled_sign_decode");
  check_body_bytes(body_bytes, 4 + packed_bytes(n, 1), n, "sign");
  uint8_t head[4];
  to_host(head, body, sizeof head, "copy of the sign scale");
  const float scale = checked_scale(head, "sign scale");
  check_padding(body, body_bytes, static_cast<uint64_t>(n), "sign bit");
  unpack(body + 4, n, scale, -scale, out, accumulate);
}

}  // namespace terse

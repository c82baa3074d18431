// QSGD and TernGrad bodies on the GPU (terse/kernels/cuda_quant_codec.h), bit for bit the CPU's
// (src/compress/qsgd.cc, tern_grad.cc).
#include <cub/block/block_reduce.cuh>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "codec_util.cuh"
#include "fixed_sum.cuh"
#include "terse/core/philox.h"
#include "terse/kernels/cuda_quant_codec.h"

namespace terse {

using namespace cuda_codec;

namespace {

constexpr int kThreads = 256;
// The compressors' Philox streams (src/compress/qsgd.cc, tern_grad.cc); must stay equal.
constexpr uint64_t kQsgdStream = 0x51534744ull;  // "QSGD"
constexpr uint64_t kTernStream = 0x5445524eull;  // "TERN"
constexpr uint32_t kMaxLevels = 32767;
constexpr unsigned long long kNoBad = ~0ull;

// The CPU's field width: 1 sign bit + the bits of levels.
unsigned qsgd_field_bits(uint32_t levels) {
  unsigned bits = 1;
  while ((uint32_t{1} << (bits - 1)) <= levels) ++bits;
  return bits;
}

void check_levels(uint32_t levels, const char* fn) {
  TERSE_CHECK(levels >= 1 && levels <= kMaxLevels, InvalidArgument, fn, ": levels=", levels,
              " is out of range; expected 1 <= levels <= ", kMaxLevels);
}

// The uniforms of elements [8g, 8g + 8): Philox blocks 2g and 2g + 1 (word i % 4 of block i / 4).
struct GroupUniforms {
  uint32_t w[8];
  __device__ GroupUniforms(const Philox4x32& gen, int64_t g, uint64_t stream) {
    const Philox4x32::U4 a = gen.at(static_cast<uint64_t>(2 * g), stream);
    const Philox4x32::U4 b = gen.at(static_cast<uint64_t>(2 * g + 1), stream);
    w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w;
    w[4] = b.x, w[5] = b.y, w[6] = b.z, w[7] = b.w;
  }
  __device__ float operator[](int64_t j) const { return Philox4x32::uniform(w[j]); }
};

__global__ void __launch_bounds__(kThreads)
    qsgd_encode_kernel(const float* __restrict__ x, int64_t n, uint32_t levels, unsigned bits,
                       const float* __restrict__ norm_at, uint64_t seed_step,
                       uint8_t* __restrict__ out) {
  const int64_t g = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (8 * g >= n) return;
  const float norm = *norm_at;
  const GroupUniforms u(Philox4x32(seed_step), g, kQsgdStream);
  const unsigned level_bits = bits - 1;
  put_group(out, n, g, bits, [&](int64_t i) {
    const float v = x[i];
    uint32_t level = 0;
    if (norm > 0.0f) {
      const double r = static_cast<double>(levels) * fabs(static_cast<double>(v)) / norm;
      auto l = static_cast<uint32_t>(floor(r));
      if (u[i - 8 * g] < r - l) ++l;
      level = l < levels ? l : levels;
    }
    const uint32_t neg = (level > 0 && v < 0.0f) ? 1u : 0u;
    return (neg << level_bits) | level;
  });
}

// The body's head: levels (u32), ||x||_2 = float(sqrt(sq)) (f32); the norm also into *norm.
__global__ void qsgd_head_kernel(const double* __restrict__ sq, uint32_t levels,
                                 uint8_t* __restrict__ body, float* __restrict__ norm) {
  const float v = static_cast<float>(sqrt(*sq));
  *norm = v;
  const uint32_t b = __float_as_uint(v);
  for (int i = 0; i < 4; ++i) {
    body[i] = static_cast<uint8_t>(levels >> (8 * i));
    body[4 + i] = static_cast<uint8_t>(b >> (8 * i));
  }
}

// max |x_i| (NaN ignored, as std::max(s, NaN) keeps s) and whether any element is not finite.
__global__ void __launch_bounds__(kThreads)
    abs_max_kernel(const float* __restrict__ x, int64_t n, unsigned* __restrict__ max_bits,
                   unsigned* __restrict__ nonfinite) {
  using Reduce = cub::BlockReduce<float, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  float m = 0.0f;
  int bad = 0;
  const int64_t stride = int64_t{gridDim.x} * kThreads;
  for (int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x; i < n; i += stride) {
    const float v = x[i];
    bad |= !isfinite(v);
    m = fmaxf(m, fabsf(v));
  }
  const float bm = Reduce(tmp).Reduce(m, [](float a, float b) { return fmaxf(a, b); });
  const int any_bad = __syncthreads_or(bad);
  if (threadIdx.x == 0) {
    atomicMax(max_bits, __float_as_uint(bm));  // >= 0: the bits order as the values
    if (any_bad) atomicOr(nonfinite, 1u);
  }
}

__global__ void __launch_bounds__(kThreads)
    terngrad_encode_kernel(const float* __restrict__ x, int64_t n, float s, uint64_t seed_step,
                           uint8_t* __restrict__ out) {
  const int64_t g = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (8 * g >= n) return;
  const GroupUniforms u(Philox4x32(seed_step), g, kTernStream);
  put_group(out, n, g, 2, [&](int64_t i) {
    const float v = x[i];
    uint32_t code = 0;
    if (s > 0.0f && u[i - 8 * g] < fabsf(v) / s) code = v < 0.0f ? 2u : 1u;
    return code;
  });
}

// The first element whose field fails `ok`, as (index << 16) | field, by atomicMin.
template <typename Ok>
__global__ void __launch_bounds__(kThreads)
    validate_fields_kernel(const uint8_t* __restrict__ p, size_t total, int64_t n, unsigned bits,
                           Ok ok, unsigned long long* __restrict__ first_bad) {
  const int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (i >= n) return;
  const uint32_t f = get_field(p, total, i, bits);
  if (!ok(f)) atomicMin(first_bad, (static_cast<unsigned long long>(i) << 16) | f);
}

template <typename ValueOf>
__global__ void __launch_bounds__(kThreads)
    decode_fields_kernel(const uint8_t* __restrict__ p, size_t total, int64_t n, unsigned bits,
                         ValueOf value_of, float* __restrict__ out, bool accumulate) {
  const int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (i >= n) return;
  const float v = value_of(get_field(p, total, i, bits));
  out[i] = accumulate ? out[i] + v : v;
}

struct QsgdLevelOk {
  uint32_t mask, levels;
  __device__ bool operator()(uint32_t f) const { return (f & mask) <= levels; }
};
struct QsgdValue {
  uint32_t mask;
  unsigned level_bits;
  float unit;
  __device__ float operator()(uint32_t f) const {
    const float mag = unit * static_cast<float>(f & mask);
    return (f >> level_bits) ? -mag : mag;
  }
};
struct TernCodeOk {
  __device__ bool operator()(uint32_t f) const { return f != 3u; }
};
struct TernValue {
  float s;
  __device__ float operator()(uint32_t f) const { return f == 0 ? 0.0f : (f == 1 ? s : -s); }
};

// Runs the validation kernel and returns the first bad (index << 16 | field), or kNoBad.
template <typename Ok>
unsigned long long first_bad_field(const uint8_t* p, size_t total, int64_t n, unsigned bits,
                                   Ok ok) {
  if (n == 0) return kNoBad;
  auto* bad = static_cast<unsigned long long*>(scratch(Scratch::kFlags, sizeof(uint64_t)));
  cuda_check(cudaMemsetAsync(bad, 0xff, sizeof(uint64_t)), "cudaMemsetAsync");
  validate_fields_kernel<<<blocks_for(n, kThreads), kThreads>>>(p, total, n, bits, ok, bad);
  check_launch("validate_fields_kernel launch");
  unsigned long long r = 0;
  to_host(&r, bad, sizeof r, "copy of the validation result");
  return r;
}

template <typename ValueOf>
void decode_fields(const uint8_t* p, size_t total, int64_t n, unsigned bits, ValueOf value_of,
                   float* out, bool accumulate) {
  if (n == 0) return;
  decode_fields_kernel<<<blocks_for(n, kThreads), kThreads>>>(p, total, n, bits, value_of, out,
                                                              accumulate);
  check_launch("decode_fields_kernel launch");
}

void check_encode(const float* x, int64_t n, const uint8_t* body, size_t cap, size_t need,
                  const char* fn) {
  check_cap(cap, need, n, fn);
  check_device_ptr(x, n, fn, "x");
  check_device_ptr(body, static_cast<int64_t>(need), fn, "body");
}

void check_decode(const uint8_t* body, size_t body_bytes, const float* out, int64_t n,
                  const char* fn) {
  check_numel(n, fn);
  check_device_ptr(body, static_cast<int64_t>(body_bytes), fn, "body");
  check_device_ptr(out, n, fn, "out");
}

}  // namespace

size_t cuda_qsgd_body_bytes(int64_t n, uint32_t levels) {
  check_numel(n, "cuda_qsgd_body_bytes");
  check_levels(levels, "cuda_qsgd_body_bytes");
  return 8 + packed_bytes(n, qsgd_field_bits(levels));
}

size_t cuda_qsgd_encode(const float* x, int64_t n, uint32_t levels, uint64_t seed_step,
                        uint8_t* body, size_t body_cap) {
  const size_t need = cuda_qsgd_body_bytes(n, levels);
  check_encode(x, n, body, body_cap, need, "cuda_qsgd_encode");
  float norm = 0.0f;
  if (n > 0) {
    // The fixed-order sum, the head from it, then the levels: all enqueued, one wait at the end.
    // A non-finite norm quantises nothing (norm > 0 fails for NaN, levels are 0 for +Inf)
    // before the check below throws.
    auto* sq = static_cast<double*>(scratch(Scratch::kFlags, 2 * sizeof(double)));
    auto* dev_norm = reinterpret_cast<float*>(sq + 1);
    enqueue_fixed_sum(x, n, fixed_sum::Term::kSquare, sq);
    qsgd_head_kernel<<<1, 1>>>(sq, levels, body, dev_norm);
    check_launch("qsgd_head_kernel launch");
    qsgd_encode_kernel<<<blocks_for((n + 7) / 8, kThreads), kThreads>>>(
        x, n, levels, qsgd_field_bits(levels), dev_norm, seed_step, body + 8);
    check_launch("qsgd_encode_kernel launch");
    to_host(&norm, dev_norm, sizeof norm, "copy of the qsgd norm");
  } else {
    uint8_t head[8];
    put_u32(head, levels);
    put_f32(head + 4, norm);
    to_device(body, head, sizeof head, "copy of the qsgd levels and norm");
  }
  TERSE_CHECK(std::isfinite(norm), NumericalError, "cuda_qsgd_encode: ||x||_2 is ", norm,
              "; the gradient holds NaN or Inf (lower the learning rate or check the loss)");
  return need;
}

void cuda_qsgd_decode(const uint8_t* body, size_t body_bytes, uint32_t levels, float* out,
                      int64_t n, bool accumulate) {
  check_levels(levels, "cuda_qsgd_decode");
  check_decode(body, body_bytes, out, n, "cuda_qsgd_decode");
  const unsigned bits = qsgd_field_bits(levels);
  check_body_bytes(body_bytes, 8 + packed_bytes(n, bits), n, "qsgd");
  uint8_t head[8];
  to_host(head, body, sizeof head, "copy of the qsgd levels and norm");
  const uint32_t got_levels = get_u32(head);
  TERSE_CHECK(got_levels == levels, CorruptData, "payload: qsgd levels ", got_levels, ", expected ",
              levels, "; every rank must use the same qsgd:levels");
  const float norm = checked_scale(head + 4, "qsgd norm");
  const uint32_t mask = (uint32_t{1} << (bits - 1)) - 1;
  const uint8_t* fields = body + 8;
  const size_t total = body_bytes - 8;
  const unsigned long long bad = first_bad_field(fields, total, n, bits, QsgdLevelOk{mask, levels});
  TERSE_CHECK(bad == kNoBad, CorruptData, "payload: qsgd level ", (bad & 0xffff) & mask,
              " at element ", bad >> 16, " exceeds levels ", levels);
  check_padding(body, body_bytes, static_cast<uint64_t>(n) * bits, "qsgd level");
  const float unit = norm / static_cast<float>(levels);
  decode_fields(fields, total, n, bits, QsgdValue{mask, bits - 1, unit}, out, accumulate);
}

size_t cuda_terngrad_body_bytes(int64_t n) {
  check_numel(n, "cuda_terngrad_body_bytes");
  return 4 + packed_bytes(n, 2);
}

size_t cuda_terngrad_encode(const float* x, int64_t n, uint64_t seed_step, uint8_t* body,
                            size_t body_cap) {
  const size_t need = cuda_terngrad_body_bytes(n);
  check_encode(x, n, body, body_cap, need, "cuda_terngrad_encode");
  unsigned host[2] = {0, 0};  // max |x| bits, non-finite flag
  if (n > 0) {
    auto* dev = static_cast<unsigned*>(scratch(Scratch::kFlags, 2 * sizeof(unsigned)));
    cuda_check(cudaMemsetAsync(dev, 0, 2 * sizeof(unsigned)), "cudaMemsetAsync");
    const unsigned grid = std::min<unsigned>(blocks_for(n, kThreads), 4096u);
    abs_max_kernel<<<grid, kThreads>>>(x, n, dev, dev + 1);
    check_launch("abs_max_kernel launch");
    to_host(host, dev, sizeof host, "copy of max |x|");
  }
  float s;
  std::memcpy(&s, &host[0], sizeof s);
  TERSE_CHECK(host[1] == 0, NumericalError,
              "cuda_terngrad_encode: the gradient holds NaN or Inf (max|x| = ", s,
              "); lower the learning rate or check the loss");
  uint8_t head[4];
  put_f32(head, s);
  to_device(body, head, sizeof head, "copy of the terngrad scale");
  const int64_t groups = (n + 7) / 8;
  if (groups > 0) {
    terngrad_encode_kernel<<<blocks_for(groups, kThreads), kThreads>>>(x, n, s, seed_step,
                                                                       body + 4);
    check_launch("terngrad_encode_kernel launch");
  }
  return need;
}

void cuda_terngrad_decode(const uint8_t* body, size_t body_bytes, float* out, int64_t n,
                          bool accumulate) {
  check_decode(body, body_bytes, out, n, "cuda_terngrad_decode");
  check_body_bytes(body_bytes, 4 + packed_bytes(n, 2), n, "terngrad");
  uint8_t head[4];
  to_host(head, body, sizeof head, "copy of the terngrad scale");
  const float s = checked_scale(head, "terngrad scale");
  const uint8_t* fields = body + 4;
  const size_t total = body_bytes - 4;
  const unsigned long long bad = first_bad_field(fields, total, n, 2, TernCodeOk{});
  TERSE_CHECK(bad == kNoBad, CorruptData, "payload: terngrad code 3 at element ", bad >> 16,
              "; expected 0 (zero), 1 (+s) or 2 (-s)");
  check_padding(body, body_bytes, static_cast<uint64_t>(n) * 2, "terngrad code");
  decode_fields(fields, total, n, 2, TernValue{s}, out, accumulate);
}

}  // namespace terse

#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "terse/core/macros.h"

namespace terse {

// Storage types. Parameters, gradients and optimizer states are kF32, kBF16 or kF16 (16-bit
// storage, f32 math); the integer and byte types carry indices and encoded payloads.
enum class DType : uint8_t { kF32 = 0, kBF16 = 1, kF16 = 2, kF64 = 3, kI32 = 4, kI64 = 5, kU8 = 6 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
// Parses "f32", "float32", "bf16", "bfloat16", "f16", "float16", ...; throws InvalidArgument.
DType dtype_from_name(const std::string& name);
bool is_floating(DType dtype);

// bfloat16 storage: the upper 16 bits of an IEEE f32.
struct BFloat16 {
  uint16_t bits;
};

// IEEE binary16 storage.
struct Half {
  uint16_t bits;
};

TERSE_HD inline float bits_to_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

TERSE_HD inline uint32_t float_to_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

TERSE_HD inline float to_float(BFloat16 x) { return bits_to_float(uint32_t{x.bits} << 16); }

// Round to nearest even; NaN stays NaN (quiet).
TERSE_HD inline BFloat16 to_bfloat16(float f) {
  uint32_t u = float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return BFloat16{static_cast<uint16_t>((u >> 16) | 0x40u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return BFloat16{static_cast<uint16_t>(u >> 16)};
}

// The portable f16 conversions: the host's, and the reference of the GPU's below.
TERSE_HD inline float half_bits_to_float(uint16_t bits) {
  const uint32_t sign = uint32_t{bits & 0x8000u} << 16;
  const uint32_t exp = (bits >> 10) & 0x1fu;
  const uint32_t man = bits & 0x3ffu;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (man << 13));  // inf / nan
  if (exp != 0) return bits_to_float(sign | ((exp + 112u) << 23) | (man << 13));
  // Subnormal (or zero): value = man * 2^-24.
  const float mag = static_cast<float>(man) * 5.9604644775390625e-08f;
  return sign ? -mag : mag;
}

// Round to nearest even, overflow to inf, NaN stays NaN.
TERSE_HD inline uint16_t float_to_half_bits(float f) {
  const uint32_t u = float_to_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: inf
  if (a < 0x38800000u) {
    // Result is subnormal in f16 (|f| < 2^-14): round |f| * 2^24 to an integer, ties to even.
    const float scaled = bits_to_float(a) * 16777216.0f;
    uint32_t m = static_cast<uint32_t>(scaled);
    const float rem = scaled - static_cast<float>(m);
    if (rem > 0.5f || (rem == 0.5f && (m & 1u))) ++m;
    return static_cast<uint16_t>(sign | m);
  }
  // Normal: rebias exponent 127 -> 15 and round the 13 dropped mantissa bits to nearest even.
  uint32_t r = a - 0x38000000u;
  r += 0xfffu + ((r >> 13) & 1u);
  return static_cast<uint16_t>(sign | (r >> 13));
}

// On a GPU the conversion instructions (exact widening; IEEE round to nearest even without
// flushing subnormals) give the portable bits for every value but NaN, which keeps the portable
// bits; the integer forms made f16 SGD 72 % of the copy's speed.
// tests/parity/cuda_multi_tensor_test.cc checks every f16 and every f32.
TERSE_HD inline float to_float(Half h) {
#if defined(__CUDA_ARCH__)
  if ((h.bits & 0x7c00u) != 0x7c00u) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h.bits));
    return f;
  }
#endif
  return half_bits_to_float(h.bits);
}

TERSE_HD inline Half to_half(float f) {
#if defined(__CUDA_ARCH__)
  if ((float_to_bits(f) & 0x7fffffffu) <= 0x7f800000u) {
    uint16_t r;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r) : "f"(f));
    return Half{r};
  }
#endif
  return Half{float_to_half_bits(f)};
}

// Generic load/store used by kernels so one Rule serves every storage type.
TERSE_HD inline float load_as_float(const float* p, int64_t i) { return p[i]; }
TERSE_HD inline float load_as_float(const BFloat16* p, int64_t i) { return to_float(p[i]); }
TERSE_HD inline float load_as_float(const Half* p, int64_t i) { return to_float(p[i]); }
TERSE_HD inline void store_from_float(float* p, int64_t i, float v) { p[i] = v; }
TERSE_HD inline void store_from_float(BFloat16* p, int64_t i, float v) { p[i] = to_bfloat16(v); }
TERSE_HD inline void store_from_float(Half* p, int64_t i, float v) { p[i] = to_half(v); }

// C++ type for each storage dtype.
template <DType D>
struct DTypeTraits;
template <>
struct DTypeTraits<DType::kF32> {
  using type = float;
};
template <>
struct DTypeTraits<DType::kBF16> {
  using type = BFloat16;
};
template <>
struct DTypeTraits<DType::kF16> {
  using type = Half;
};
template <>
struct DTypeTraits<DType::kF64> {
  using type = double;
};
template <>
struct DTypeTraits<DType::kI32> {
  using type = int32_t;
};
template <>
struct DTypeTraits<DType::kI64> {
  using type = int64_t;
};
template <>
struct DTypeTraits<DType::kU8> {
  using type = uint8_t;
};

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::kF32;
}
template <>
constexpr DType dtype_of<BFloat16>() {
  return DType::kBF16;
}
template <>
constexpr DType dtype_of<Half>() {
  return DType::kF16;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::kF64;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::kI32;
}
template <>
constexpr DType dtype_of<int64_t>() {
  return DType::kI64;
}
template <>
constexpr DType dtype_of<uint8_t>() {
  return DType::kU8;
}

}  // namespace terse

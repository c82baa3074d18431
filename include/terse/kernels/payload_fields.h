#pragma once

// The scalar fields of the compressors' payload bodies: little-endian integers and floats, and
// the checks a decoder makes of a scale or a mean it reads. Shared by the CPU compressors
// (src/compress) and the GPU codecs (src/kernels/cuda), so that both write, read and reject the
// same bytes with the same messages.

#include <cmath>
#include <cstdint>

#include "terse/core/check.h"
#include "terse/core/dtype.h"

namespace terse::payload {

inline void put_u32(uint8_t* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline uint32_t get_u32(const uint8_t* in) {
  return uint32_t{in[0]} | uint32_t{in[1]} << 8 | uint32_t{in[2]} << 16 | uint32_t{in[3]} << 24;
}
inline void put_u64(uint8_t* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline uint64_t get_u64(const uint8_t* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{in[i]} << (8 * i);
  return v;
}
inline void put_f32(uint8_t* out, float f) { put_u32(out, float_to_bits(f)); }
inline float get_f32(const uint8_t* in) { return bits_to_float(get_u32(in)); }

// A scale read from a payload must be a finite, non-negative number (CorruptData otherwise).
inline float checked_scale(const uint8_t* in, const char* what) {
  const float s = get_f32(in);
  TERSE_CHECK(std::isfinite(s) && s >= 0.0f, CorruptData, "payload: ", what, " is ", s,
              ", expected a finite value >= 0");
  return s;
}

// Seide 1-bit's two reconstruction values at in (mean of the negative elements, then of the
// non-negative ones): finite, the first <= 0 and the second >= 0 (CorruptData otherwise).
inline void checked_onebit_means(const uint8_t* in, float& mean_neg, float& mean_pos) {
  mean_neg = get_f32(in);
  mean_pos = get_f32(in + 4);
  TERSE_CHECK(std::isfinite(mean_neg) && mean_neg <= 0.0f, CorruptData,
              "payload: onebit mean of the negative elements is ", mean_neg,
              ", expected a finite value <= 0");
  TERSE_CHECK(std::isfinite(mean_pos) && mean_pos >= 0.0f, CorruptData,
              "payload: onebit mean of the non-negative elements is ", mean_pos,
              ", expected a finite value >= 0");
}

}  // namespace terse::payload

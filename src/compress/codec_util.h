#pragma once

// Byte-level helpers shared by the compressors (little-endian scalars and scale checks from
// terse/kernels/payload_fields.h, shared with the GPU codecs): value codings, MSB-first
// bit packing, sorted index lists as delta varints. Internal to src/compress.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "terse/compress/wire_format.h"
#include "terse/core/check.h"
#include "terse/core/dtype.h"
#include "terse/core/philox.h"
#include "terse/kernels/payload_fields.h"

namespace terse::compress_detail {

using payload::checked_scale;
using payload::get_f32;
using payload::get_u32;
using payload::get_u64;
using payload::put_f32;
using payload::put_u32;
using payload::put_u64;

// One value in the given coding (f32, f16 or bf16), little-endian.
inline void put_value(uint8_t* out, ValueCoding c, float v) {
  if (c == ValueCoding::kF32) {
    put_f32(out, v);
    return;
  }
  const uint16_t bits = c == ValueCoding::kF16 ? to_half(v).bits : to_bfloat16(v).bits;
  out[0] = static_cast<uint8_t>(bits);
  out[1] = static_cast<uint8_t>(bits >> 8);
}
inline float get_value(const uint8_t* in, ValueCoding c) {
  if (c == ValueCoding::kF32) return get_f32(in);
  const auto bits = static_cast<uint16_t>(in[0] | in[1] << 8);
  return c == ValueCoding::kF16 ? to_float(Half{bits}) : to_float(BFloat16{bits});
}

// Runs loop(scale) with scale(v) = weight * v, or scale(v) = v when weight is 1: an unweighted
// decode then writes the decoded bits as they are (1 * v would quiet a signalling NaN) and its
// loop has no multiply.
template <typename Loop>
void with_weight(float weight, Loop&& loop) {
  if (weight == 1.0f) {
    loop([](float v) { return v; });
  } else {
    loop([weight](float v) { return weight * v; });
  }
}

// The largest numel max_encoded_bytes accepts: 2^48 elements, far above any bucket, keeps every
// byte count below 2^63 without overflow checks in each compressor.
inline constexpr int64_t kMaxNumel = int64_t{1} << 48;

inline uint64_t checked_numel(int64_t numel, const char* name) {
  TERSE_CHECK(numel >= 0 && numel <= kMaxNumel, InvalidArgument, name, ": max_encoded_bytes numel ",
              numel, " is out of range; expected 0 <= numel <= 2^48");
  return static_cast<uint64_t>(numel);
}

inline size_t packed_bytes(uint64_t count, unsigned bits) {
  return static_cast<size_t>((count * bits + 7) / 8);
}

// Packs fields of `bits` bits (<= 24) MSB-first into bytes; the last byte is zero padded.
class BitWriter {
 public:
  explicit BitWriter(uint8_t* out) : out_(out) {}
  void put(uint32_t v, unsigned bits) {
    acc_ = (acc_ << bits) | v;
    n_ += bits;
    while (n_ >= 8) {
      n_ -= 8;
      out_[pos_++] = static_cast<uint8_t>(acc_ >> n_);
    }
    acc_ &= (uint64_t{1} << n_) - 1;
  }
  size_t finish() {
    if (n_ > 0) out_[pos_++] = static_cast<uint8_t>(acc_ << (8 - n_));
    n_ = 0;
    acc_ = 0;
    return pos_;
  }

 private:
  uint8_t* out_;
  size_t pos_ = 0;
  uint64_t acc_ = 0;
  unsigned n_ = 0;
};

// Reads what BitWriter wrote; the caller has checked the byte count.
class BitReader {
 public:
  explicit BitReader(const uint8_t* in) : in_(in) {}
  uint32_t get(unsigned bits) {
    while (n_ < bits) {
      acc_ = (acc_ << 8) | in_[pos_++];
      n_ += 8;
    }
    n_ -= bits;
    const auto v = static_cast<uint32_t>(acc_ >> n_);
    acc_ &= (uint64_t{1} << n_) - 1;
    return v;
  }
  // The padding bits left in the last byte (must be zero in a canonical payload).
  uint64_t rest() const { return acc_; }

 private:
  const uint8_t* in_;
  size_t pos_ = 0;
  uint64_t acc_ = 0;
  unsigned n_ = 0;
};

inline void check_padding(const BitReader& r, const char* what) {
  TERSE_CHECK(r.rest() == 0, CorruptData, "payload: padding bits after the last ", what, " are 0x",
              std::hex, r.rest(), std::dec, ", expected 0");
}

// Writes strictly increasing indices as delta varints; returns the bytes written.
inline size_t write_indices(const std::vector<int64_t>& idx, uint8_t* out) {
  size_t pos = 0;
  int64_t prev = -1;
  for (const int64_t i : idx) {
    pos += write_varint(static_cast<uint64_t>(prev < 0 ? i : i - prev), out + pos);
    prev = i;
  }
  return pos;
}

inline size_t max_index_bytes(uint64_t count, uint64_t numel) {
  return static_cast<size_t>(count) * varint_bytes(numel);
}

// Reads exactly `count` delta varints filling [begin, end): each index strictly above the
// previous and below numel.
inline std::vector<int64_t> read_indices(const uint8_t* begin, const uint8_t* end, uint64_t count,
                                         uint64_t numel) {
  TERSE_CHECK(count <= static_cast<uint64_t>(end - begin), CorruptData, "payload: count ", count,
              " indices cannot fit in ", end - begin, " index bytes (at least 1 byte each)");
  std::vector<int64_t> idx(static_cast<size_t>(count));
  const uint8_t* p = begin;
  uint64_t prev = 0;
  for (uint64_t k = 0; k < count; ++k) {
    const uint64_t d = read_varint(&p, end, "index delta");
    TERSE_CHECK(k == 0 || d >= 1, CorruptData, "payload: index ", k,
                " does not increase (delta 0 after index ", prev,
                "); expected strictly increasing indices");
    TERSE_CHECK(d < numel && (k == 0 || prev < numel - d), CorruptData, "payload: index ", k,
                " is out of range (previous ", prev, " + delta ", d, ", numel ", numel,
                "); expected an index < numel");
    prev = k == 0 ? d : prev + d;
    idx[static_cast<size_t>(k)] = static_cast<int64_t>(prev);
  }
  TERSE_CHECK(p == end, CorruptData, "payload: ", end - p, " bytes left after the ", count,
              " indices; expected the index section to end with the body");
  return idx;
}

}  // namespace terse::compress_detail

namespace terse::compress_detail {

inline void check_codings(const PayloadHeader& h, ValueCoding values, IndexCoding indices) {
  TERSE_CHECK(h.values == values, CorruptData, "payload: value coding ",
              value_coding_name(h.values), ", expected ", value_coding_name(values),
              " (this compressor's options); every rank must use the same compressor spec");
  TERSE_CHECK(h.indices == indices, CorruptData, "payload: index coding ",
              index_coding_name(h.indices), ", expected ", index_coding_name(indices));
}

inline void check_count(const PayloadHeader& h, uint64_t expected) {
  TERSE_CHECK(h.count == expected, CorruptData, "payload: count ", h.count, ", expected ", expected,
              " for numel ", h.numel);
}

inline void check_body(const PayloadHeader& h, uint64_t expected) {
  TERSE_CHECK(h.body_bytes == expected, CorruptData, "payload: body length ", h.body_bytes,
              " bytes, expected ", expected, " for numel ", h.numel, " and count ", h.count);
}

// Uniform [0, 1) for element i from Philox keyed by seed_step (stream separates compressors).
inline float uniform_at(const Philox4x32& gen, int64_t i, uint64_t stream) {
  const Philox4x32::U4 r = gen.at(static_cast<uint64_t>(i) / 4, stream);
  const uint32_t lanes[4] = {r.x, r.y, r.z, r.w};
  return Philox4x32::uniform(lanes[i % 4]);
}

}  // namespace terse::compress_detail

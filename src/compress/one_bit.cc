#include "terse/compress/one_bit.h"

#include <algorithm>
#include <cmath>

#include "codec_util.h"

namespace terse {

using namespace compress_detail;

namespace {

// [x >= 0] from the bits (sign bit clear, or -0), not a float compare, which GCC does not
// vectorise without -fno-trapping-math. NaN gives its sign bit's answer.
inline uint32_t nonneg_bit(float x) {
  const uint32_t u = float_to_bits(x);
  return 1u - ((u >> 31) & static_cast<uint32_t>(u != 0x80000000u));
}

}  // namespace

size_t OneBit::max_encoded_bytes(int64_t numel) const {
  checked_numel(numel, "onebit");
  return kPayloadHeaderBytes + 8 + packed_bytes(static_cast<uint64_t>(numel), 1);
}

size_t OneBit::encode_body(const float* x, int64_t n, uint64_t, PayloadHeader& h,
                           uint8_t* body) const {
  uint8_t* bits = body + 8;
  // Blocks of kBlock elements: 16 float lanes per sum (so the loop vectorises), each block's
  // lanes then added in double, so 10^8 elements lose nothing visible; the block's bits are
  // packed while it is still in L1.
  constexpr int64_t kBlock = 2048;
  double sum_neg = 0.0, sum_pos = 0.0;
  int64_t count_neg = 0;
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const int64_t len = std::min(kBlock, n - b0);
    const float* v = x + b0;
    float neg[16] = {}, pos[16] = {};
    int32_t nneg[16] = {};
    int64_t i = 0;
    for (; i + 16 <= len; i += 16) {
      for (int j = 0; j < 16; ++j) {
        // NaN poisons a mean either way (as does Inf - Inf); the check below reports it.
        const uint32_t is_neg = 1u - nonneg_bit(v[i + j]);
        const float q = v[i + j] * static_cast<float>(is_neg);
        neg[j] += q;
        pos[j] += v[i + j] - q;
        nneg[j] += static_cast<int32_t>(is_neg);
      }
    }
    for (; i < len; ++i) {
      const uint32_t is_neg = 1u - nonneg_bit(v[i]);
      const float q = v[i] * static_cast<float>(is_neg);
      neg[0] += q;
      pos[0] += v[i] - q;
      nneg[0] += static_cast<int32_t>(is_neg);
    }
    for (int j = 0; j < 16; ++j) {
      sum_neg += double{neg[j]};
      sum_pos += double{pos[j]};
      count_neg += nneg[j];
    }
    // kBlock is a multiple of 8, so every block but the last fills whole bytes.
    uint8_t* o = bits + b0 / 8;
    const int64_t whole = len / 8;
    for (int64_t k = 0; k < whole; ++k) {
      const float* w = v + 8 * k;
      unsigned byte = 0;
      for (int j = 0; j < 8; ++j) byte |= static_cast<unsigned>(nonneg_bit(w[j])) << (7 - j);
      o[k] = static_cast<uint8_t>(byte);
    }
    if (len % 8 != 0) {
      unsigned byte = 0;
      for (int64_t j = 0; j < len % 8; ++j)
        byte |= static_cast<unsigned>(nonneg_bit(v[8 * whole + j])) << (7 - j);
      o[whole] = static_cast<uint8_t>(byte);
    }
  }
  const int64_t count_pos = n - count_neg;
  const auto mean_neg = static_cast<float>(count_neg > 0 ? sum_neg / count_neg : 0.0);
  const auto mean_pos = static_cast<float>(count_pos > 0 ? sum_pos / count_pos : 0.0);
  TERSE_CHECK(std::isfinite(mean_neg) && std::isfinite(mean_pos), NumericalError,
              "onebit: the reconstruction means are ", mean_neg, " (negative elements) and ",
              mean_pos,
              " (non-negative); the gradient holds NaN or Inf (lower the learning rate or check "
              "the loss)");
  put_f32(body, mean_neg);
  put_f32(body + 4, mean_pos);
  h.count = static_cast<uint64_t>(n);
  h.values = ValueCoding::kNone;
  h.indices = IndexCoding::kImplicit;
  return 8 + packed_bytes(static_cast<uint64_t>(n), 1);
}

void OneBit::decode_body(const PayloadHeader& h, const uint8_t* body, float* out, int64_t n,
                         bool accumulate, float weight) const {
  check_codings(h, ValueCoding::kNone, IndexCoding::kImplicit);
  check_count(h, h.numel);
  check_body(h, 8 + packed_bytes(h.numel, 1));
  float mean_neg = 0.0f;
  float mean_pos = 0.0f;
  payload::checked_onebit_means(body, mean_neg, mean_pos);
  const uint8_t* bits = body + 8;
  const int64_t full = n / 8;
  if (n % 8 != 0) {
    const unsigned pad = bits[full] & ((1u << (8 - n % 8)) - 1);
    TERSE_CHECK(pad == 0, CorruptData, "payload: padding bits after the last onebit bit are 0x",
                std::hex, pad, std::dec, ", expected 0");
  }
  // Both means are finite, so weight 1 leaves them as they are.
  const float lut[2] = {weight * mean_neg, weight * mean_pos};
  for (int64_t b = 0; b < full; ++b) {
    const unsigned byte = bits[b];
    float* o = out + 8 * b;
    for (int j = 0; j < 8; ++j) {
      const float v = lut[(byte >> (7 - j)) & 1u];
      o[j] = accumulate ? o[j] + v : v;
    }
  }
  for (int64_t i = 8 * full; i < n; ++i) {
    const float v = lut[(bits[full] >> (7 - (i - 8 * full))) & 1u];
    out[i] = accumulate ? out[i] + v : v;
  }
}

}  // namespace terse

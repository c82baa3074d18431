#include "terse/compress/one_bit.h"

#include <cmath>

#include "codec_util.h"

namespace terse {

using namespace compress_detail;

size_t OneBit::max_encoded_bytes(int64_t numel) const {
  checked_numel(numel, "onebit");
  return kPayloadHeaderBytes + 8 + packed_bytes(static_cast<uint64_t>(numel), 1);
}

size_t OneBit::encode_body(const float* x, int64_t n, uint64_t, PayloadHeader& h,
                           uint8_t* body) const {
  uint8_t* bits = body + 8;
  // One pass: eight independent lanes (so the sums vectorise) of the negative sum, the
  // non-negative sum and the negative count, in double so 10^8 elements lose nothing visible;
  // the bits of each group of eight are packed as they are read.
  double neg[8] = {}, pos[8] = {};
  int64_t nneg[8] = {};
  const int64_t full = n / 8;
  for (int64_t b = 0; b < full; ++b) {
    const float* v = x + 8 * b;
    unsigned byte = 0;
    for (int j = 0; j < 8; ++j) {
      const bool nonneg = v[j] >= 0.0f;  // NaN counts as negative and poisons the mean below
      const double d = v[j];
      neg[j] += nonneg ? 0.0 : d;
      pos[j] += nonneg ? d : 0.0;
      nneg[j] += nonneg ? 0 : 1;
      byte |= (nonneg ? 1u : 0u) << (7 - j);
    }
    bits[b] = static_cast<uint8_t>(byte);
  }
  if (n % 8 != 0) {
    unsigned byte = 0;
    for (int64_t i = 8 * full; i < n; ++i) {
      const int j = static_cast<int>(i - 8 * full);
      const bool nonneg = x[i] >= 0.0f;
      neg[j] += nonneg ? 0.0 : double{x[i]};
      pos[j] += nonneg ? double{x[i]} : 0.0;
      nneg[j] += nonneg ? 0 : 1;
      byte |= (nonneg ? 1u : 0u) << (7 - j);
    }
    bits[full] = static_cast<uint8_t>(byte);
  }
  double sum_neg = 0.0, sum_pos = 0.0;
  int64_t count_neg = 0;
  for (int j = 0; j < 8; ++j) {
    sum_neg += neg[j];
    sum_pos += pos[j];
    count_neg += nneg[j];
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
                         bool accumulate) const {
  check_codings(h, ValueCoding::kNone, IndexCoding::kImplicit);
  check_count(h, h.numel);
  check_body(h, 8 + packed_bytes(h.numel, 1));
  const float mean_neg = get_f32(body);
  const float mean_pos = get_f32(body + 4);
  TERSE_CHECK(std::isfinite(mean_neg) && mean_neg <= 0.0f, CorruptData,
              "payload: onebit mean of the negative elements is ", mean_neg,
              ", expected a finite value <= 0");
  TERSE_CHECK(std::isfinite(mean_pos) && mean_pos >= 0.0f, CorruptData,
              "payload: onebit mean of the non-negative elements is ", mean_pos,
              ", expected a finite value >= 0");
  const uint8_t* bits = body + 8;
  const int64_t full = n / 8;
  if (n % 8 != 0) {
    const unsigned pad = bits[full] & ((1u << (8 - n % 8)) - 1);
    TERSE_CHECK(pad == 0, CorruptData, "payload: padding bits after the last onebit bit are 0x",
                std::hex, pad, std::dec, ", expected 0");
  }
  const float lut[2] = {mean_neg, mean_pos};
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

#include "terse/compress/tern_grad.h"

#include <algorithm>
#include <cmath>

#include "codec_util.h"

namespace terse {

using namespace compress_detail;

namespace {
constexpr uint64_t kTernStream = 0x5445524eull;  // "TERN"
}

size_t TernGrad::max_encoded_bytes(int64_t numel) const {
  checked_numel(numel, "terngrad");
  return kPayloadHeaderBytes + 4 + packed_bytes(static_cast<uint64_t>(numel), 2);
}

size_t TernGrad::encode_body(const float* x, int64_t n, uint64_t seed_step, PayloadHeader& h,
                             uint8_t* body) const {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s = std::max(s, std::fabs(x[i]));
  bool finite = true;
  for (int64_t i = 0; i < n && finite; ++i) finite = std::isfinite(x[i]);
  TERSE_CHECK(finite, NumericalError, "terngrad: the gradient holds NaN or Inf (max|x| = ", s,
              "); lower the learning rate or check the loss");
  put_f32(body, s);
  const Philox4x32 gen(seed_step);
  BitWriter w(body + 4);
  for (int64_t i = 0; i < n; ++i) {
    uint32_t code = 0;
    if (s > 0.0f && uniform_at(gen, i, kTernStream) < std::fabs(x[i]) / s)
      code = x[i] < 0.0f ? 2u : 1u;
    w.put(code, 2);
  }
  const size_t bytes = w.finish();
  h.count = static_cast<uint64_t>(n);
  h.values = ValueCoding::kNone;
  h.indices = IndexCoding::kImplicit;
  return 4 + bytes;
}

void TernGrad::decode_body(const PayloadHeader& h, const uint8_t* body, float* out, int64_t n,
                           bool accumulate, float weight) const {
  check_codings(h, ValueCoding::kNone, IndexCoding::kImplicit);
  check_count(h, h.numel);
  check_body(h, 4 + packed_bytes(h.numel, 2));
  const float s = checked_scale(body, "terngrad scale");
  {
    BitReader r(body + 4);
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t code = r.get(2);
      TERSE_CHECK(code != 3u, CorruptData, "payload: terngrad code 3 at element ", i,
                  "; expected 0 (zero), 1 (+s) or 2 (-s)");
    }
    check_padding(r, "terngrad code");
  }
  // s is finite, so weight 1 leaves the three values as they are.
  const float lut[3] = {weight * 0.0f, weight * s, weight * -s};
  BitReader r(body + 4);
  for (int64_t i = 0; i < n; ++i) {
    const float v = lut[r.get(2)];
    out[i] = accumulate ? out[i] + v : v;
  }
}

}  // namespace terse

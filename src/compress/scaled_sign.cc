#include "terse/compress/scaled_sign.h"

#include <algorithm>
#include <cmath>

#include "codec_util.h"
#include "terse/kernels/fixed_order_sum.h"

namespace terse {

using namespace compress_detail;

size_t ScaledSign::max_encoded_bytes(int64_t numel) const {
  checked_numel(numel, "sign");
  return kPayloadHeaderBytes + 4 + packed_bytes(static_cast<uint64_t>(numel), 1);
}

size_t ScaledSign::encode_body(const float* x, int64_t n, uint64_t, PayloadHeader& h,
                               uint8_t* body) const {
  // ||x||_1 in the fixed order of terse/kernels/fixed_order_sum.h, which the GPU codec follows.
  const double l1 = fixed_sum::host_sum(x, n, fixed_sum::Term::kAbs);
  const float scale = n > 0 ? static_cast<float>(l1 / static_cast<double>(n)) : 0.0f;
  TERSE_CHECK(std::isfinite(scale), NumericalError, "sign: the scale ||x||_1/n is ", scale,
              "; the gradient holds NaN or Inf (lower the learning rate or check the loss)");
  put_f32(body, scale);
  BitWriter w(body + 4);
  for (int64_t i = 0; i < n; ++i) w.put(x[i] < 0.0f ? 1u : 0u, 1);  // sign(0) = +1
  const size_t bits = w.finish();
  h.count = static_cast<uint64_t>(n);
  h.values = ValueCoding::kNone;
  h.indices = IndexCoding::kImplicit;
  return 4 + bits;
}

void ScaledSign::decode_body(const PayloadHeader& h, const uint8_t* body, float* out, int64_t n,
                             bool accumulate, float weight) const {
  check_codings(h, ValueCoding::kNone, IndexCoding::kImplicit);
  check_count(h, h.numel);
  check_body(h, 4 + packed_bytes(h.numel, 1));
  const float scale = checked_scale(body, "sign scale");
  {
    BitReader r(body + 4);
    for (int64_t i = 0; i < n; ++i) r.get(1);
    check_padding(r, "sign bit");
  }
  // weight * (-scale) == -(weight * scale): rounding is symmetric; scale is finite.
  const float scaled = weight * scale;
  BitReader r(body + 4);
  for (int64_t i = 0; i < n; ++i) {
    const float v = r.get(1) ? -scaled : scaled;
    out[i] = accumulate ? out[i] + v : v;
  }
}

}  // namespace terse

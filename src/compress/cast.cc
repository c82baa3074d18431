#include "terse/compress/cast.h"

#include "codec_util.h"

namespace terse {

using namespace compress_detail;

Cast::Cast(ValueCoding coding) : coding_(coding) {
  TERSE_CHECK(coding == ValueCoding::kF16 || coding == ValueCoding::kBF16, InvalidArgument,
              "cast: coding ", value_coding_name(coding),
              " is not supported; expected f16 or bf16");
}

std::string Cast::name() const { return coding_ == ValueCoding::kF16 ? "fp16" : "bf16"; }

CompressorId Cast::id() const {
  return coding_ == ValueCoding::kF16 ? CompressorId::kFp16 : CompressorId::kBf16;
}

size_t Cast::max_encoded_bytes(int64_t numel) const {
  checked_numel(numel, name().c_str());
  return kPayloadHeaderBytes + 2 * static_cast<size_t>(numel);
}

size_t Cast::encode_body(const float* x, int64_t n, uint64_t, PayloadHeader& h,
                         uint8_t* body) const {
  for (int64_t i = 0; i < n; ++i) put_value(body + 2 * i, coding_, x[i]);
  h.count = static_cast<uint64_t>(n);
  h.values = coding_;
  h.indices = IndexCoding::kImplicit;
  return 2 * static_cast<size_t>(n);
}

void Cast::decode_body(const PayloadHeader& h, const uint8_t* body, float* out, int64_t n,
                       bool accumulate, float weight) const {
  check_codings(h, coding_, IndexCoding::kImplicit);
  check_count(h, h.numel);
  check_body(h, 2 * h.numel);
  with_weight(weight, [&](auto scale) {
    for (int64_t i = 0; i < n; ++i) {
      const float v = scale(get_value(body + 2 * i, coding_));
      out[i] = accumulate ? out[i] + v : v;
    }
  });
}

}  // namespace terse

#include "terse/compress/qsgd.h"

#include <cmath>
#include <sstream>

#include "codec_util.h"
#include "terse/kernels/fixed_order_sum.h"

namespace terse {

using namespace compress_detail;

namespace {
constexpr uint64_t kQsgdStream = 0x51534744ull;  // "QSGD"
constexpr uint32_t kMaxLevels = 32767;
}  // namespace

Qsgd::Qsgd(uint32_t levels) : levels_(levels), field_bits_(1) {
  TERSE_CHECK(levels >= 1 && levels <= kMaxLevels, InvalidArgument, "qsgd: levels=", levels,
              " is out of range; expected 1 <= levels <= ", kMaxLevels);
  while ((uint32_t{1} << (field_bits_ - 1)) <= levels_) ++field_bits_;
}

std::string Qsgd::spec() const {
  std::ostringstream os;
  os << "qsgd:levels=" << levels_;
  return os.str();
}

size_t Qsgd::max_encoded_bytes(int64_t numel) const {
  checked_numel(numel, "qsgd");
  return kPayloadHeaderBytes + 8 + packed_bytes(static_cast<uint64_t>(numel), field_bits_);
}

size_t Qsgd::encode_body(const float* x, int64_t n, uint64_t seed_step, PayloadHeader& h,
                         uint8_t* body) const {
  // ||x||_2^2 in the fixed order of terse/kernels/fixed_order_sum.h, which the GPU codec follows.
  const double sq = fixed_sum::host_sum(x, n, fixed_sum::Term::kSquare);
  const auto norm = static_cast<float>(std::sqrt(sq));
  TERSE_CHECK(std::isfinite(norm), NumericalError, "qsgd: ||x||_2 is ", norm,
              "; the gradient holds NaN or Inf (lower the learning rate or check the loss)");
  put_u32(body, levels_);
  put_f32(body + 4, norm);
  const Philox4x32 gen(seed_step);
  const unsigned level_bits = field_bits_ - 1;
  BitWriter w(body + 8);
  for (int64_t i = 0; i < n; ++i) {
    uint32_t level = 0;
    if (norm > 0.0f) {
      const double r = static_cast<double>(levels_) * std::fabs(static_cast<double>(x[i])) / norm;
      auto l = static_cast<uint32_t>(std::floor(r));
      if (uniform_at(gen, i, kQsgdStream) < r - l) ++l;
      // |x_i| <= ||x|| up to the rounding of norm; never emit a level above s.
      level = std::min(l, levels_);
    }
    const uint32_t neg = (level > 0 && x[i] < 0.0f) ? 1u : 0u;
    w.put((neg << level_bits) | level, field_bits_);
  }
  const size_t bytes = w.finish();
  h.count = static_cast<uint64_t>(n);
  h.values = ValueCoding::kNone;
  h.indices = IndexCoding::kImplicit;
  return 8 + bytes;
}

void Qsgd::decode_body(const PayloadHeader& h, const uint8_t* body, float* out, int64_t n,
                       bool accumulate, float weight) const {
  check_codings(h, ValueCoding::kNone, IndexCoding::kImplicit);
  check_count(h, h.numel);
  check_body(h, 8 + packed_bytes(h.numel, field_bits_));
  const uint32_t levels = get_u32(body);
  TERSE_CHECK(levels == levels_, CorruptData, "payload: qsgd levels ", levels, ", expected ",
              levels_, "; every rank must use the same qsgd:levels");
  const float norm = checked_scale(body + 4, "qsgd norm");
  const unsigned level_bits = field_bits_ - 1;
  const uint32_t mask = (uint32_t{1} << level_bits) - 1;
  {
    BitReader r(body + 8);
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t level = r.get(field_bits_) & mask;
      TERSE_CHECK(level <= levels_, CorruptData, "payload: qsgd level ", level, " at element ", i,
                  " exceeds levels ", levels_);
    }
    check_padding(r, "qsgd level");
  }
  const float unit = norm / static_cast<float>(levels_);
  // weight * (unit * l), not (weight * unit) * l: the weighted value is the decoded one times w.
  with_weight(weight, [&](auto scale) {
    BitReader r(body + 8);
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t f = r.get(field_bits_);
      const float mag = unit * static_cast<float>(f & mask);
      const float v = scale((f >> level_bits) ? -mag : mag);
      out[i] = accumulate ? out[i] + v : v;
    }
  });
}

}  // namespace terse

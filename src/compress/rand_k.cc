#include "terse/compress/rand_k.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "codec_util.h"
#include "terse/kernels/rand_k_permutation.h"

namespace terse {

using namespace compress_detail;

RandK::RandK(double density, ValueCoding values, bool scale, bool send_indices)
    : density_(density), values_(values), scale_(scale), send_indices_(send_indices) {
  TERSE_CHECK(density > 0.0 && density <= 1.0, InvalidArgument, "randk: density=", density,
              " is out of range; expected 0 < density <= 1");
  TERSE_CHECK(values == ValueCoding::kF32 || values == ValueCoding::kF16, InvalidArgument,
              "randk: values=", value_coding_name(values),
              " is not supported; expected f32 or f16");
}

std::string RandK::spec() const {
  std::ostringstream os;
  os << "randk:density=" << density_ << ",values=" << value_coding_name(values_)
     << ",scale=" << (scale_ ? "true" : "false")
     << ",send_indices=" << (send_indices_ ? "true" : "false");
  return os.str();
}

int64_t RandK::k_for(int64_t numel) const {
  if (numel <= 0) return 0;
  const auto k = static_cast<int64_t>(std::floor(density_ * static_cast<double>(numel)));
  return std::min(numel, std::max<int64_t>(1, k));
}

std::vector<int64_t> RandK::indices(int64_t numel, uint64_t seed_step) const {
  const int64_t k = k_for(numel);
  std::vector<int64_t> idx(static_cast<size_t>(k));
  if (k == numel) {  // pi's first n outputs are all of [0, n)
    std::iota(idx.begin(), idx.end(), int64_t{0});
    return idx;
  }
  // The first k outputs of the permutation (terse/kernels/rand_k_permutation.h), sorted: through
  // a bitmap of [0, n) when k is large enough for its scan to cost less than a sort.
  const RandKPermutation pi(static_cast<uint64_t>(numel), seed_step);
  if (k >= numel / 256) {
    std::vector<uint64_t> bits(static_cast<size_t>((numel + 63) / 64), 0);
    for (int64_t j = 0; j < k; ++j) {
      const uint64_t y = pi(static_cast<uint64_t>(j));
      bits[static_cast<size_t>(y >> 6)] |= uint64_t{1} << (y & 63);
    }
    size_t o = 0;
    for (size_t w = 0; w < bits.size(); ++w) {
      for (uint64_t b = bits[w]; b != 0; b &= b - 1) {
        idx[o++] = static_cast<int64_t>(64 * w) + __builtin_ctzll(b);
      }
    }
    return idx;
  }
  for (int64_t j = 0; j < k; ++j) {
    idx[static_cast<size_t>(j)] = static_cast<int64_t>(pi(static_cast<uint64_t>(j)));
  }
  std::sort(idx.begin(), idx.end());
  return idx;
}

size_t RandK::max_encoded_bytes(int64_t numel) const {
  checked_numel(numel, "randk");
  const auto k = static_cast<uint64_t>(k_for(numel));
  return kPayloadHeaderBytes + 8 + k * value_coding_bytes(values_) +
         (send_indices_ ? max_index_bytes(k, static_cast<uint64_t>(numel)) : 0);
}

size_t RandK::encode_body(const float* x, int64_t n, uint64_t seed_step, PayloadHeader& h,
                          uint8_t* body) const {
  const std::vector<int64_t> idx = indices(n, seed_step);
  const float factor =
      scale_ && n > 0 ? static_cast<float>(static_cast<double>(n) / static_cast<double>(idx.size()))
                      : 1.0f;
  put_u64(body, seed_step);
  const size_t vs = value_coding_bytes(values_);
  for (size_t j = 0; j < idx.size(); ++j) put_value(body + 8 + j * vs, values_, x[idx[j]] * factor);
  size_t bytes = 8 + idx.size() * vs;
  if (send_indices_) bytes += write_indices(idx, body + bytes);
  h.count = idx.size();
  h.values = values_;
  h.indices = send_indices_ ? IndexCoding::kDeltaVarint : IndexCoding::kImplicit;
  return bytes;
}

void RandK::decode_body(const PayloadHeader& h, const uint8_t* body, float* out, int64_t n,
                        bool accumulate, float weight) const {
  check_codings(h, values_, send_indices_ ? IndexCoding::kDeltaVarint : IndexCoding::kImplicit);
  check_count(h, static_cast<uint64_t>(k_for(n)));
  const size_t vs = value_coding_bytes(values_);
  const size_t fixed = 8 + static_cast<size_t>(h.count) * vs;
  std::vector<int64_t> idx;
  if (send_indices_) {
    TERSE_CHECK(h.body_bytes >= fixed, CorruptData, "payload: body length ", h.body_bytes,
                " bytes is below the ", fixed, " bytes of seed and ", h.count, " values");
    idx = read_indices(body + fixed, body + h.body_bytes, h.count, h.numel);
  } else {
    check_body(h, fixed);
    idx = indices(n, get_u64(body));
  }
  if (!accumulate) std::fill(out, out + n, 0.0f);
  with_weight(weight, [&](auto scale) {
    for (size_t j = 0; j < idx.size(); ++j)
      out[idx[j]] += scale(get_value(body + 8 + j * vs, values_));
  });
}

}  // namespace terse

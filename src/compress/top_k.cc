#include "terse/compress/top_k.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "codec_util.h"

namespace terse {

using namespace compress_detail;

TopK::TopK(double density, ValueCoding values) : density_(density), values_(values) {
  TERSE_CHECK(density > 0.0 && density <= 1.0, InvalidArgument, "topk: density=", density,
              " is out of range; expected 0 < density <= 1");
  TERSE_CHECK(values == ValueCoding::kF32 || values == ValueCoding::kF16, InvalidArgument,
              "topk: values=", value_coding_name(values), " is not supported; expected f32 or f16");
}

std::string TopK::spec() const {
  std::ostringstream os;
  os << "topk:density=" << density_ << ",values=" << value_coding_name(values_);
  return os.str();
}

int64_t TopK::k_for(int64_t numel) const {
  if (numel <= 0) return 0;
  const auto k = static_cast<int64_t>(std::floor(density_ * static_cast<double>(numel)));
  return std::min(numel, std::max<int64_t>(1, k));
}

size_t TopK::max_encoded_bytes(int64_t numel) const {
  checked_numel(numel, "topk");
  const auto k = static_cast<uint64_t>(k_for(numel));
  return kPayloadHeaderBytes + k * value_coding_bytes(values_) +
         max_index_bytes(k, static_cast<uint64_t>(numel));
}

size_t TopK::encode_body(const float* x, int64_t n, uint64_t, PayloadHeader& h,
                         uint8_t* body) const {
  const int64_t k = k_for(n);
  for (int64_t i = 0; i < n; ++i)
    TERSE_CHECK(!std::isnan(x[i]), NumericalError, "topk: input element ", i,
                " is NaN; the gradient diverged (lower the learning rate or check the loss)");
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
  // Larger |x| first, ties by lower index: a strict total order, so the set is deterministic.
  const auto before = [x](int64_t a, int64_t b) {
    const float fa = std::fabs(x[a]), fb = std::fabs(x[b]);
    return fa > fb || (fa == fb && a < b);
  };
  if (k < n) std::nth_element(idx.begin(), idx.begin() + k, idx.end(), before);
  idx.resize(static_cast<size_t>(k));
  std::sort(idx.begin(), idx.end());
  const size_t vs = value_coding_bytes(values_);
  for (size_t j = 0; j < idx.size(); ++j) put_value(body + j * vs, values_, x[idx[j]]);
  const size_t index_bytes = write_indices(idx, body + idx.size() * vs);
  h.count = static_cast<uint64_t>(k);
  h.values = values_;
  h.indices = IndexCoding::kDeltaVarint;
  return idx.size() * vs + index_bytes;
}

void TopK::decode_body(const PayloadHeader& h, const uint8_t* body, float* out, int64_t n,
                       bool accumulate) const {
  check_codings(h, values_, IndexCoding::kDeltaVarint);
  const size_t vs = value_coding_bytes(values_);
  TERSE_CHECK(h.count <= h.body_bytes / vs, CorruptData, "payload: count ", h.count, " values of ",
              vs, " bytes do not fit in the body of ", h.body_bytes, " bytes");
  const size_t value_bytes = static_cast<size_t>(h.count) * vs;
  const std::vector<int64_t> idx =
      read_indices(body + value_bytes, body + h.body_bytes, h.count, h.numel);
  if (!accumulate) std::fill(out, out + n, 0.0f);
  for (size_t j = 0; j < idx.size(); ++j) out[idx[j]] += get_value(body + j * vs, values_);
}

}  // namespace terse

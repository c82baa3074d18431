#include "terse/compress/top_k.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "sparse_codec.h"

namespace terse {

using namespace compress_detail;

namespace {

void check_values(ValueCoding values) {
  TERSE_CHECK(values == ValueCoding::kF32 || values == ValueCoding::kF16, InvalidArgument,
              "topk: values=", value_coding_name(values), " is not supported; expected f32 or f16");
}

}  // namespace

TopK::TopK(double density, ValueCoding values) : density_(density), values_(values) {
  TERSE_CHECK(density > 0.0 && density <= 1.0, InvalidArgument, "topk: density=", density,
              " is out of range; expected 0 < density <= 1");
  check_values(values);
}

TopK TopK::with_k(int64_t k, ValueCoding values) {
  TERSE_CHECK(k >= 1 && k <= kMaxNumel, InvalidArgument, "topk: k=", k,
              " is out of range; expected an integer 1 <= k <= 2^48");
  check_values(values);
  TopK c(1.0, values);
  c.k_ = k;
  return c;
}

std::string TopK::spec() const {
  std::ostringstream os;
  if (k_ > 0) {
    os << "topk:k=" << k_;
  } else {
    os << "topk:density=" << density_;
  }
  os << ",values=" << value_coding_name(values_);
  return os.str();
}

int64_t TopK::k_for(int64_t numel) const {
  if (numel <= 0) return 0;
  if (k_ > 0) return std::min(numel, k_);
  const auto k = static_cast<int64_t>(std::floor(density_ * static_cast<double>(numel)));
  return std::min(numel, std::max<int64_t>(1, k));
}

size_t TopK::max_encoded_bytes(int64_t numel) const {
  checked_numel(numel, "topk");
  const auto k = static_cast<uint64_t>(k_for(numel));
  return kPayloadHeaderBytes + sparse_body_bound(k, static_cast<uint64_t>(numel), values_);
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
  return write_sparse_body(
      idx, values_, [x, &idx](size_t j) { return x[idx[j]]; }, h, body);
}

void TopK::decode_body(const PayloadHeader& h, const uint8_t* body, float* out, int64_t n,
                       bool accumulate, float weight) const {
  decode_sparse_body(h, values_, body, out, n, accumulate, weight);
}

}  // namespace terse

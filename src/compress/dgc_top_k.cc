#include "terse/compress/dgc_top_k.h"

#include <cmath>
#include <sstream>

#include "sparse_codec.h"

namespace terse {

using namespace compress_detail;

DgcTopK::DgcTopK(double density, ValueCoding values, double sample_ratio)
    : density_(density), values_(values), sample_ratio_(sample_ratio) {
  TERSE_CHECK(density > 0.0 && density <= 1.0, InvalidArgument, "dgc: density=", density,
              " is out of range; expected 0 < density <= 1");
  TERSE_CHECK(values == ValueCoding::kF32 || values == ValueCoding::kF16, InvalidArgument,
              "dgc: values=", value_coding_name(values), " is not supported; expected f32 or f16");
  TERSE_CHECK(sample_ratio >= 0.01 && sample_ratio <= 1.0, InvalidArgument,
              "dgc: sample=", sample_ratio,
              " is out of range; expected 0.01 <= sample <= 1 (the reference's limits)");
}

std::string DgcTopK::spec() const {
  std::ostringstream os;
  os << "dgc:density=" << density_ << ",values=" << value_coding_name(values_)
     << ",sample=" << sample_ratio_;
  return os.str();
}

int64_t DgcTopK::k_for(int64_t numel) const {
  return numel <= 0 ? 0 : dgc_num_selects(numel, density_);
}

size_t DgcTopK::max_encoded_bytes(int64_t numel) const {
  const uint64_t n = checked_numel(numel, "dgc");
  return kPayloadHeaderBytes + sparse_body_bound(static_cast<uint64_t>(k_for(numel)), n, values_);
}

SparseSelection DgcTopK::select(const float* x, int64_t n, uint64_t seed_step) const {
  TERSE_CHECK(n >= 0, InvalidArgument, "dgc select: n ", n, " is negative");
  if (n == 0) return {};
  DgcSelectOptions options;
  options.sample_ratio = sample_ratio_;
  return dgc_select(x, n, density_, seed_step, options);
}

size_t DgcTopK::write_selection_body(const SparseSelection& s, PayloadHeader& h,
                                     uint8_t* body) const {
  return write_sparse_body(
      s.indices, values_, [&s](size_t j) { return s.values[j]; }, h, body);
}

size_t DgcTopK::encode_selection(const SparseSelection& s, int64_t n, uint8_t* out,
                                 size_t cap) const {
  const size_t bound = max_encoded_bytes(n);
  TERSE_CHECK(cap >= bound, InvalidArgument, "dgc encode_selection: output capacity ", cap,
              " bytes is below max_encoded_bytes(", n, ") = ", bound,
              "; size the buffer with max_encoded_bytes");
  TERSE_CHECK(out != nullptr, InvalidArgument, "dgc encode_selection: output buffer is null");
  TERSE_CHECK(s.indices.size() == s.values.size(), InvalidArgument,
              "dgc encode_selection: ", s.indices.size(), " indices but ", s.values.size(),
              " values; pass a selection from select() or dgc_select");
  const int64_t k = k_for(n);
  TERSE_CHECK(static_cast<int64_t>(s.indices.size()) <= k, InvalidArgument,
              "dgc encode_selection: ", s.indices.size(), " entries exceed k = ceil(", density_,
              " * ", n, ") = ", k, "; select with the same density");
  int64_t prev = -1;
  for (size_t j = 0; j < s.indices.size(); ++j) {
    const int64_t i = s.indices[j];
    TERSE_CHECK(i > prev && i < n, InvalidArgument, "dgc encode_selection: index ", j, " is ", i,
                " (previous ", prev, ", n ", n,
                "); expected strictly increasing indices in [0, n)");
    TERSE_CHECK(!std::isnan(s.values[j]), NumericalError, "dgc encode_selection: value ", j,
                " (index ", i, ") is NaN; the velocity diverged (lower the learning rate)");
    prev = i;
  }
  PayloadHeader h;
  h.compressor = id();
  h.numel = static_cast<uint64_t>(n);
  h.body_bytes = write_selection_body(s, h, out + kPayloadHeaderBytes);
  write_payload_header(h, out);
  return h.payload_bytes();
}

size_t DgcTopK::encode_body(const float* x, int64_t n, uint64_t seed_step, PayloadHeader& h,
                            uint8_t* body) const {
  const SparseSelection s = select(x, n, seed_step);
  return write_selection_body(s, h, body);
}

SparseSelection DgcTopK::decode_selection(const uint8_t* data, size_t len, int64_t n) const {
  TERSE_CHECK(data != nullptr || len == 0, InvalidArgument,
              "dgc decode_selection: payload pointer is null with length ", len);
  const PayloadHeader h = checked_header(data, len, n);
  const uint8_t* body = data + kPayloadHeaderBytes;
  SparseSelection s;
  s.indices = checked_sparse_indices(h, values_, body);
  const size_t vs = value_coding_bytes(values_);
  s.values.resize(s.indices.size());
  for (size_t j = 0; j < s.values.size(); ++j) s.values[j] = get_value(body + j * vs, values_);
  return s;
}

void DgcTopK::decode_body(const PayloadHeader& h, const uint8_t* body, float* out, int64_t n,
                          bool accumulate, float weight) const {
  decode_sparse_body(h, values_, body, out, n, accumulate, weight);
}

}  // namespace terse

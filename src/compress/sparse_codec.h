#pragma once

// The sparse body shared by TopK and DgcTopK: count values (f32 or f16), then the count
// ascending indices as delta LEB128 varints. Internal to src/compress.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "codec_util.h"

namespace terse::compress_detail {

// A true bound on the body of k values and k indices below numel.
inline size_t sparse_body_bound(uint64_t k, uint64_t numel, ValueCoding values) {
  return static_cast<size_t>(k) * value_coding_bytes(values) + max_index_bytes(k, numel);
}

// Writes value_at(j) for each j, then idx (strictly increasing) as delta varints, and fills the
// header's count and codings. Returns the body bytes.
template <typename ValueAt>
size_t write_sparse_body(const std::vector<int64_t>& idx, ValueCoding values, ValueAt value_at,
                         PayloadHeader& h, uint8_t* body) {
  const size_t vs = value_coding_bytes(values);
  for (size_t j = 0; j < idx.size(); ++j) put_value(body + j * vs, values, value_at(j));
  const size_t index_bytes = write_indices(idx, body + idx.size() * vs);
  h.count = static_cast<uint64_t>(idx.size());
  h.values = values;
  h.indices = IndexCoding::kDeltaVarint;
  return idx.size() * vs + index_bytes;
}

// Validates the whole body (codings, value bytes, every index) before writing out[0, n): a
// scatter of weight * value (accumulate = false zeroes the rest first) or a scatter-add, which
// touches only the count selected elements.
// The body's indices, validated (codings, value bytes, every index strictly increasing below
// numel); the values start at body.
inline std::vector<int64_t> checked_sparse_indices(const PayloadHeader& h, ValueCoding values,
                                                   const uint8_t* body) {
  check_codings(h, values, IndexCoding::kDeltaVarint);
  const size_t vs = value_coding_bytes(values);
  TERSE_CHECK(h.count <= h.body_bytes / vs, CorruptData, "payload: count ", h.count, " values of ",
              vs, " bytes do not fit in the body of ", h.body_bytes, " bytes");
  const size_t value_bytes = static_cast<size_t>(h.count) * vs;
  return read_indices(body + value_bytes, body + h.body_bytes, h.count, h.numel);
}

inline void decode_sparse_body(const PayloadHeader& h, ValueCoding values, const uint8_t* body,
                               float* out, int64_t n, bool accumulate, float weight) {
  const std::vector<int64_t> idx = checked_sparse_indices(h, values, body);
  const size_t vs = value_coding_bytes(values);
  if (!accumulate) std::fill(out, out + n, 0.0f);
  with_weight(weight, [&](auto scale) {
    for (size_t j = 0; j < idx.size(); ++j) out[idx[j]] += scale(get_value(body + j * vs, values));
  });
}

}  // namespace terse::compress_detail

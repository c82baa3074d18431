#include "terse/comm/algorithms/sparse_all_gather.h"

#include <algorithm>
#include <string>
#include <vector>

#include "terse/core/check.h"

namespace terse {

uint64_t ring_all_reduce_bytes(uint64_t nbytes, int world_size) {
  if (world_size <= 1) return 0;
  const uint64_t n = static_cast<uint64_t>(world_size);
  return 2 * (n - 1) * nbytes / n;
}

uint64_t recursive_doubling_bytes(uint64_t nbytes, int world_size) {
  uint64_t rounds = 0;
  for (int64_t reach = 1; reach < world_size; reach *= 2) ++rounds;
  return rounds * nbytes;
}

namespace {

// Header each rank all_gathers first: 4 x i64.
constexpr int64_t kHeaderWords = 4;
constexpr int64_t kCount = 0, kNumel = 1, kBadPos = 2, kBadValue = 3;
// kCount of a rank whose own arguments were invalid (it throws InvalidArgument itself).
constexpr int64_t kArgumentError = -1;
constexpr uint64_t kPairBytes = sizeof(int32_t) + sizeof(float);

// First position in `idx[0, count)` that is out of [0, numel) or not above its predecessor;
// -1 when all are good.
int64_t first_bad_index(const int32_t* idx, int64_t count, int64_t numel) {
  int64_t prev = -1;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t v = idx[i];
    if (v < 0 || v >= numel || v <= prev) return i;
    prev = v;
  }
  return -1;
}

std::string bad_index_reason(int64_t value, int64_t prev, int64_t numel) {
  if (value < 0 || value >= numel) {
    return detail::str_cat("index ", value, " is outside [0, ", numel, ")");
  }
  return detail::str_cat("index ", value, " does not follow ", prev,
                         " in increasing order (indices must be sorted, without repeats)");
}

// Empty when the local arguments are usable, else why not.
std::string check_arguments(const SparseVector& mine, const TensorView& out) {
  if (out.dtype != DType::kF32) {
    return detail::str_cat("out holds ", dtype_name(out.dtype), "; pass a dense f32 buffer");
  }
  if (!out.device.is_cpu()) {
    return detail::str_cat("out is on ", out.device.str(), "; pass a CPU buffer");
  }
  if (out.numel < 0 || (out.numel > 0 && out.data == nullptr)) {
    return detail::str_cat("out has ", out.numel, " elements at ", out.data,
                           "; pass an allocated buffer of numel >= 0 elements");
  }
  if (out.numel > int64_t{1} << 31) {
    return detail::str_cat("out has ", out.numel,
                           " elements, more than int32 indices address (2^31); split the bucket");
  }
  if (mine.count < 0 || mine.count > out.numel) {
    return detail::str_cat("count is ", mine.count, " for a vector of ", out.numel,
                           " elements; pass 0 <= count <= numel");
  }
  if (mine.count > 0 && (mine.indices == nullptr || mine.values == nullptr)) {
    return detail::str_cat("count is ", mine.count, " but indices (", mine.indices, ") or values (",
                           static_cast<const void*>(mine.values),
                           ") is null; pass the pair buffers");
  }
  return std::string();
}

}  // namespace

SparseAllGatherReport SparseAllGather::run(const SparseVector& mine, TensorView out) {
  Communicator& c = comm();
  const int n = c.size();
  const int me = c.rank();
  const size_t un = static_cast<size_t>(n);

  // 1. Header. A rank with bad arguments still joins, so the others fail at once instead of
  // waiting for their timeout.
  const std::string arg_error = check_arguments(mine, out);
  std::vector<int64_t> header(kHeaderWords, -1);
  if (!arg_error.empty()) {
    header[kCount] = kArgumentError;
  } else {
    header[kCount] = mine.count;
    header[kNumel] = out.numel;
    const int64_t bad = first_bad_index(mine.indices, mine.count, out.numel);
    header[kBadPos] = bad;
    if (bad >= 0) header[kBadValue] = mine.indices[bad];
  }
  std::vector<int64_t> headers(un * kHeaderWords);
  c.all_gather(TensorView::of(header.data(), kHeaderWords),
               TensorView::of(headers.data(), static_cast<int64_t>(headers.size())));
  auto h = [&](int r, int64_t word) {
    return headers[static_cast<size_t>(r) * kHeaderWords + word];
  };

  TERSE_CHECK(arg_error.empty(), InvalidArgument, "sparse_all_gather on rank ", me, " of ", n, ": ",
              arg_error);
  for (int r = 0; r < n; ++r) {
    TERSE_CHECK(h(r, kCount) != kArgumentError, CommError, "sparse_all_gather on rank ", me,
                ": rank ", r,
                " passed invalid arguments (its own error says which); fix that rank's call");
  }
  for (int r = 1; r < n; ++r) {
    TERSE_CHECK(h(r, kNumel) == h(0, kNumel), InvalidArgument, "sparse_all_gather on rank ", me,
                ": rank ", r, " passed a vector of ", h(r, kNumel), " elements but rank 0 passed ",
                h(0, kNumel),
                "; every rank must pass the same bucket (run check_bucket_layout at start-up)");
  }
  const int64_t numel = out.numel;
  int64_t total = 0, max_count = 0;
  std::vector<int64_t> counts(un);
  for (int r = 0; r < n; ++r) {
    const int64_t cnt = h(r, kCount);
    TERSE_CHECK(cnt >= 0 && cnt <= numel, CorruptData, "sparse_all_gather on rank ", me, ": rank ",
                r, " announced ", cnt, " pairs for a vector of ", numel,
                " elements (must be in [0, numel]; the sender checks its own); the header was "
                "corrupted between ranks or rank ",
                r, " does not run this algorithm");
    const int64_t bad = h(r, kBadPos);
    TERSE_CHECK(bad < 0, CorruptData, "sparse_all_gather on rank ", me, ": rank ", r,
                " sent bad pairs: index ", h(r, kBadValue), " at position ", bad, " of its ", cnt,
                " (indices must be strictly increasing in [0, ", numel,
                ")); fix the compressor that produced rank ", r, "'s pairs");
    counts[static_cast<size_t>(r)] = cnt;
    total += cnt;
    max_count = std::max(max_count, cnt);
  }

  SparseAllGatherReport report;
  report.total_count = total;
  report.max_count = max_count;
  report.bytes_dense = ring_all_reduce_bytes(static_cast<uint64_t>(numel) * sizeof(float), n);
  const uint64_t un64 = static_cast<uint64_t>(n);
  report.bytes_sparse = (un64 - 1) * kPairBytes * static_cast<uint64_t>(total) / un64;
  const uint64_t header_bytes = (un64 - 1) * kHeaderWords * sizeof(int64_t);
  // Both paths cost (N-1)/N * 8 * x per rank with x = total_count (pairs) or numel (dense), so
  // the byte comparison is exact in integers.
  report.dense_fallback = options_.allow_dense_fallback && n > 1 && total > numel;
  float* dst = out.as<float>();
  const float scale_div = static_cast<float>(n);

  if (report.dense_fallback) {
    // 2. Dense: scatter this rank's (already validated) pairs into a zero vector; all_reduce.
    report.path = "dense";
    std::fill(dst, dst + numel, 0.0f);
    for (int64_t i = 0; i < mine.count; ++i) dst[mine.indices[i]] += mine.values[i];
    c.all_reduce(out, ReduceOp::kSum);
    report.bytes_sent = header_bytes + report.bytes_dense;
  } else {
    // 3. Sparse: indices then values, every rank's block in rank order.
    report.path = "sparse";
    std::vector<int32_t> all_idx(static_cast<size_t>(total));
    std::vector<float> all_val(static_cast<size_t>(total));
    c.all_gatherv(TensorView::of(const_cast<int32_t*>(mine.indices), mine.count),
                  TensorView::of(all_idx.data(), total), counts);
    c.all_gatherv(TensorView::of(const_cast<float*>(mine.values), mine.count),
                  TensorView::of(all_val.data(), total), counts);
    // Validate every received block before writing anything: a corrupt peer must not cause an
    // out-of-bounds write.
    int64_t offset = 0;
    for (int r = 0; r < n; ++r) {
      const int64_t cnt = counts[static_cast<size_t>(r)];
      const int32_t* idx = all_idx.data() + offset;
      const int64_t bad = first_bad_index(idx, cnt, numel);
      TERSE_CHECK(bad < 0, CorruptData, "sparse_all_gather on rank ", me,
                  ": pairs received from rank ", r, ": at position ", bad, " of ", cnt, ", ",
                  bad_index_reason(bad >= 0 ? idx[bad] : 0, bad > 0 ? idx[bad - 1] : -1, numel),
                  "; the data was corrupted between ranks or rank ", r,
                  " does not run this algorithm's wire format");
      offset += cnt;
    }
    std::fill(dst, dst + numel, 0.0f);
    for (int64_t i = 0; i < total; ++i) {
      dst[all_idx[static_cast<size_t>(i)]] += all_val[static_cast<size_t>(i)];
    }
    report.bytes_sent = header_bytes + (un64 - 1) * kPairBytes * static_cast<uint64_t>(mine.count);
  }
  if (options_.reduction == SparseReduction::kAverage && n > 1) {
    for (int64_t i = 0; i < numel; ++i) dst[i] /= scale_div;
  }
  return report;
}

}  // namespace terse

#include "terse/comm/algorithms/bucket_layout.h"

#include <algorithm>
#include <string>
#include <vector>

#include "terse/core/check.h"

namespace terse {

uint64_t bucket_layout_hash(const std::vector<int64_t>& bucket_numels) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](uint64_t v) {
    for (int b = 0; b < 8; ++b) {
      h ^= (v >> (8 * b)) & 0xffu;
      h *= 1099511628211ull;
    }
  };
  mix(static_cast<uint64_t>(bucket_numels.size()));
  for (const int64_t n : bucket_numels) mix(static_cast<uint64_t>(n));
  return h;
}

void check_bucket_layout(Communicator& comm, const std::vector<int64_t>& bucket_numels) {
  const int n = comm.size();
  const int me = comm.rank();
  const size_t un = static_cast<size_t>(n);
  // Hash and bucket count in one small all_gather; the sizes travel only on a mismatch (every
  // rank sees the same hashes, so every rank takes the same branch).
  int64_t mine[2] = {static_cast<int64_t>(bucket_layout_hash(bucket_numels)),
                     static_cast<int64_t>(bucket_numels.size())};
  std::vector<int64_t> all(2 * un);
  comm.all_gather(TensorView::of(mine, 2), TensorView::of(all.data(), 2 * n));
  bool same = true;
  int64_t max_buckets = 0;
  for (size_t r = 0; r < un; ++r) {
    same = same && all[2 * r] == all[0] && all[2 * r + 1] == all[1];
    TERSE_CHECK(all[2 * r + 1] >= 0, CorruptData, "check_bucket_layout on rank ", me, ": rank ", r,
                " announced ", all[2 * r + 1], " buckets; that rank is not running terse");
    max_buckets = std::max(max_buckets, all[2 * r + 1]);
  }
  if (same) return;

  // Sizes padded to the longest list with -1 ("no such bucket").
  std::vector<int64_t> padded(static_cast<size_t>(max_buckets), -1);
  std::copy(bucket_numels.begin(), bucket_numels.end(), padded.begin());
  std::vector<int64_t> sizes(un * static_cast<size_t>(max_buckets));
  comm.all_gather(TensorView::of(padded.data(), max_buckets),
                  TensorView::of(sizes.data(), static_cast<int64_t>(sizes.size())));
  auto size_of = [&](size_t r, int64_t b) {
    return sizes[r * static_cast<size_t>(max_buckets) + static_cast<size_t>(b)];
  };
  auto describe = [](int64_t numel) {
    return numel < 0 ? std::string("none") : detail::str_cat(numel, " elements");
  };
  const size_t self = static_cast<size_t>(me);
  for (int64_t b = 0; b < max_buckets; ++b) {
    for (size_t r = 0; r < un; ++r) {
      if (size_of(r, b) == size_of(self, b)) continue;
      TERSE_THROW(InvalidArgument, "gradient bucket layouts differ between ranks: bucket ", b, ": ",
                  describe(size_of(self, b)), " on rank ", me, ", ", describe(size_of(r, b)),
                  " on rank ", r, " (rank ", me, " has ", bucket_numels.size(), " buckets, rank ",
                  r, " has ", all[2 * r + 1],
                  "); every rank must build the same model with the same bucket size");
    }
  }
  // Same sizes, different hash: only a peer computing the hash differently gets here.
  TERSE_THROW(CorruptData, "check_bucket_layout on rank ", me,
              ": layout hashes differ between ranks but the bucket sizes agree; a rank runs a "
              "different terse version");
}

}  // namespace terse

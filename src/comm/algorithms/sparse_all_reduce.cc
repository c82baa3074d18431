#include "terse/comm/algorithms/sparse_all_reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "sparse_all_reduce_internal.h"
#include "sparse_internal.h"
#include "staged_collectives.h"
#include "terse/core/check.h"
#include "terse/kernels/cuda_power_sgd.h"
#include "terse/kernels/cuda_sparse_blocks.h"
#include "terse/kernels/cuda_sparse_select.h"

namespace terse {

using algorithms_detail::host_all_gather;
using algorithms_detail::host_all_gatherv;
using algorithms_detail::host_all_reduce;
using algorithms_detail::host_all_to_all;
using algorithms_detail::host_all_to_allv;
using sparse_all_reduce_detail::Block;
using sparse_all_reduce_detail::check_block;
using sparse_all_reduce_detail::check_fixed_block;
using sparse_all_reduce_detail::check_received_counts;
using sparse_all_reduce_detail::gather_candidate_counts;
using sparse_all_reduce_detail::kName;
using sparse_all_reduce_detail::rebalance_positions;
using sparse_all_reduce_detail::set_fixed_bytes;
using sparse_all_reduce_detail::set_water_fill_bytes;
using sparse_all_reduce_detail::sparse_path_report;
using sparse_detail::first_bad_index;
using sparse_detail::index_at;
using sparse_detail::kPairBytes;

namespace {

// Header each rank all_gathers first: 7 x i64.
constexpr int64_t kHeaderWords = 7;
constexpr int64_t kCount = 0, kNumel = 1, kBudget = 2, kBadPos = 3, kBadValue = 4,
                  kNonFinitePos = 5, kBoundsHash = 6;
// kCount of a rank whose own arguments were invalid (it throws InvalidArgument itself).
constexpr int64_t kArgumentError = -1;
// The index before position `bad` of idx, lo - 1 at position 0 (what first_bad_index compares).
int64_t prev_index(const int32_t* idx, int64_t bad, int64_t lo) {
  return bad > 0 ? idx[bad - 1] : lo - 1;
}
// Why the index at position `bad` of idx is bad (sparse_detail::bad_index_reason).
std::string bad_index_reason(const int32_t* idx, int64_t bad, int64_t lo, int64_t hi) {
  return sparse_detail::bad_index_reason(idx[bad], prev_index(idx, bad, lo), lo, hi);
}

int64_t first_non_finite(const float* v, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(v[i])) return i;
  }
  return -1;
}

// Phase 0's look at this rank's own (validated-argument) pairs, on their device: the first bad
// index in [0, numel) and its value, the first non-finite value (-1: none).
struct OwnPairs {
  int64_t bad = -1;
  int64_t bad_value = -1;
  int64_t non_finite = -1;
};
OwnPairs check_own_pairs(const SparseVector& mine, int64_t numel) {
  OwnPairs o;
  if (mine.device.is_cuda()) {
    const int device = mine.device.index;
    o.bad = cuda_first_bad_indices(device, mine.indices, {0, mine.count}, 0, numel)[0];
    o.non_finite = cuda_first_non_finite(device, mine.values, mine.count);
  } else {
    o.bad = first_bad_index(mine.indices, mine.count, 0, numel);
    o.non_finite = first_non_finite(mine.values, mine.count);
  }
  if (o.bad >= 0) o.bad_value = index_at(mine.indices, o.bad, mine.device);
  return o;
}

// FNV-1a over the boundaries: ranks holding different ranges would select different sets.
int64_t bounds_hash(const std::vector<int64_t>& b) {
  uint64_t h = 1469598103934665603ull;
  for (const int64_t x : b) {
    h ^= static_cast<uint64_t>(x);
    h *= 1099511628211ull;
  }
  return static_cast<int64_t>(h >> 1);  // non-negative: never confused with a flag
}

// Empty when this rank's arguments are usable (sparse_detail::check_arguments, and boundaries
// that end at numel), else why not.
std::string check_arguments(const SparseVector& mine, const TensorView& out, const Communicator& c,
                            const std::vector<int64_t>& bounds) {
  std::string why = sparse_detail::check_arguments(mine, out, c);
  if (why.empty() && !bounds.empty() && bounds.back() != out.numel) {
    why = detail::str_cat("the boundaries end at ", bounds.back(), " but out has ", out.numel,
                          " elements; set_boundaries from a checkpoint of this same vector");
  }
  return why;
}

// kFixed's validation all_reduce (MAX): 3 x i64 on every call. Words 0 and 1: the max and the
// bitwise-negated min (max of ~h = ~min h) of one hash of numel, budget and the boundaries;
// word 2: the error word (error_word). A rank with bad arguments adds kNone to words 0 and 1.
constexpr int64_t kFixedWords = 3;
constexpr int64_t kFHashMax = 0, kFHashNotMin = 1, kFError = 2;
constexpr uint64_t kFixedControlBytes = kFixedWords * sizeof(int64_t);
// Only when the hash words disagree (every rank sees it, so every rank runs it): one more
// all_reduce MAX of the detail words, max and -min of numel, of budget and of the boundary hash,
// so the error names which differs and the values seen.
constexpr int64_t kDetailWords = 6;
constexpr int64_t kDNumelMax = 0, kDNumelNegMin = 1, kDBudgetMax = 2, kDBudgetNegMin = 3,
                  kDHashMax = 4, kDHashNegMin = 5;
// The identity of MAX: what a rank with bad arguments adds to the value words.
constexpr int64_t kNone = std::numeric_limits<int64_t>::min();

// The error word: MAX over ranks picks the highest kind, then within it the highest rank, with
// that rank's 32-bit payload (a position < 2^31, or an index's bits). Bits [62..60] the kind,
// [59..32] rank + 1, [31..0] the payload; 0 when no rank has a problem. Non-negative.
enum class FixedError : uint64_t { kOk = 0, kNonFinite = 1, kBadPair = 2, kBadArguments = 3 };
constexpr int kErrorRankBits = 28;
// The largest world size whose rank + 1 fits the error word.
constexpr int64_t kFixedMaxWorld = (int64_t{1} << kErrorRankBits) - 1;
int64_t error_word(FixedError kind, int rank, uint32_t payload) {
  return static_cast<int64_t>(static_cast<uint64_t>(kind) << 60 |
                              (static_cast<uint64_t>(rank) + 1) << 32 | payload);
}
FixedError error_kind(int64_t w) { return static_cast<FixedError>(static_cast<uint64_t>(w) >> 60); }
int error_rank(int64_t w) {
  return static_cast<int>(
      ((static_cast<uint64_t>(w) >> 32) & static_cast<uint64_t>(kFixedMaxWorld)) - 1);
}
uint32_t error_payload(int64_t w) { return static_cast<uint32_t>(w & 0xffffffff); }

// One 64-bit hash of what every rank must agree on. With equal boundaries, numel and budget
// within 32 bits each (numel <= 2^31 is checked) map one-to-one: a mismatch there is never
// missed; a boundary mismatch is missed with probability ~2^-64.
int64_t agreement_hash(int64_t numel, int64_t budget, int64_t boundary_hash) {
  uint64_t h = static_cast<uint64_t>(boundary_hash) + 0x9e3779b97f4a7c15ull;  // murmur3 fmix64
  h = (h ^ (h >> 33)) * 0xff51afd7ed558ccdull;
  h = (h ^ (h >> 33)) * 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return static_cast<int64_t>(h ^ static_cast<uint64_t>(numel) << 32 ^
                              static_cast<uint64_t>(budget));
}

// A kFixed block of `size` slots: real pairs (indices strictly increasing in [lo, hi), finite
// values), then padding (kPadIndex, value 0). Sets `real`; returns what is wrong, or "".
std::string fixed_block_problem(const int32_t* idx, const float* val, int64_t size, int64_t lo,
                                int64_t hi, int64_t& real) {
  real = 0;
  while (real < size && idx[real] != SparseAllReduce::kPadIndex) ++real;
  const int64_t bad = first_bad_index(idx, real, lo, hi);
  if (bad >= 0) {
    return detail::str_cat("at position ", bad, " of ", size, ", ",
                           bad_index_reason(idx, bad, lo, hi));
  }
  for (int64_t i = real; i < size; ++i) {
    if (idx[i] != SparseAllReduce::kPadIndex) {
      return detail::str_cat("at position ", i, " of ", size, ", index ", idx[i],
                             " follows the padding (index ", SparseAllReduce::kPadIndex,
                             ") that starts at position ", real,
                             " (padding must come after the real pairs)");
    }
  }
  for (int64_t i = real; i < size; ++i) {
    if (val[i] != 0.0f) {
      return detail::str_cat("at position ", i, " of ", size, ", the padding carries value ",
                             val[i], " (must be 0)");
    }
  }
  const int64_t nf = first_non_finite(val, real);
  if (nf >= 0) {
    return detail::str_cat("at position ", nf, " of ", size, ", value ", val[nf], " of index ",
                           idx[nf], " is not finite");
  }
  return std::string();
}

// Both modes' last steps on the host: out = 0 but the selected sums (/N for kAverage), and
// which of my pairs made the result (both lists sorted: one merge). sent == nullptr: every pair
// went out (the water-filled mode); else pair i counts only where sent[i] (the fixed mode drops
// over-quota pairs before phase 1, so one that reached the result came from another rank).
void write_result(const std::vector<int32_t>& idx, const std::vector<float>& val, int world,
                  SparseReduction reduction, const SparseVector& mine, const uint8_t* sent,
                  TensorView out, SparseAllReduceReport& report) {
  const bool average = reduction == SparseReduction::kAverage && world > 1;
  const float div = static_cast<float>(world);
  std::vector<float> scaled(val.size());
  for (size_t i = 0; i < val.size(); ++i) scaled[i] = average ? val[i] / div : val[i];
  float* dst = out.as<float>();
  std::fill(dst, dst + out.numel, 0.0f);
  for (size_t i = 0; i < idx.size(); ++i) dst[idx[i]] = scaled[i];
  report.selected = static_cast<int64_t>(idx.size());
  report.kept.assign(static_cast<size_t>(mine.count), 0);
  size_t g = 0;
  for (int64_t i = 0; i < mine.count; ++i) {
    while (g < idx.size() && idx[g] < mine.indices[i]) ++g;
    const bool in =
        (sent == nullptr || sent[i] != 0) && g < idx.size() && idx[g] == mine.indices[i];
    report.kept[static_cast<size_t>(i)] = in ? 1 : 0;
    if (!in) ++report.dropped;
  }
}

// The gathered indices that rebalancing reads (none when nothing was selected).
std::vector<int64_t> rebalance_picks(const std::vector<int32_t>& gathered, int world) {
  std::vector<int64_t> picks;
  if (gathered.empty()) return picks;
  for (const int64_t p : rebalance_positions(static_cast<int64_t>(gathered.size()), world)) {
    picks.push_back(gathered[static_cast<size_t>(p)]);
  }
  return picks;
}

// Phase 2's sums: the received pairs of the spans [begin, end) of (idx, val), added in span
// order into the range [lo, hi) (so in rank order), and the touched indices, ascending.
struct RangeSums {
  std::vector<float> sums;
  std::vector<int32_t> cand;
};
RangeSums sum_range(int64_t lo, int64_t hi, const std::vector<std::pair<size_t, size_t>>& spans,
                    const std::vector<int32_t>& idx, const std::vector<float>& val) {
  const size_t range = static_cast<size_t>(hi - lo);
  RangeSums rs;
  rs.sums.assign(range, 0.0f);
  std::vector<uint8_t> touched(range, 0);
  for (const auto& [begin, end] : spans) {
    for (size_t i = begin; i < end; ++i) {
      const size_t at = static_cast<size_t>(idx[i] - lo);
      rs.sums[at] += val[i];
      touched[at] = 1;
    }
  }
  for (size_t i = 0; i < range; ++i) {
    if (touched[i]) rs.cand.push_back(static_cast<int32_t>(lo + static_cast<int64_t>(i)));
  }
  return rs;
}

// Keeps the q candidates of largest |sum| (ties: lower index), in ascending index order.
void keep_largest(std::vector<int32_t>& cand, const std::vector<float>& sums, int64_t lo,
                  int64_t q) {
  if (static_cast<int64_t>(cand.size()) <= q) return;
  auto larger = [&](int32_t x, int32_t y) {
    const float ax = std::fabs(sums[static_cast<size_t>(x - lo)]);
    const float ay = std::fabs(sums[static_cast<size_t>(y - lo)]);
    return ax > ay || (ax == ay && x < y);
  };
  std::nth_element(cand.begin(), cand.begin() + q, cand.end(), larger);
  cand.resize(static_cast<size_t>(q));
  std::sort(cand.begin(), cand.end());
}

}  // namespace

namespace sparse_all_reduce_detail {

namespace {

// Who sent the block and what it is, for the messages.
std::string block_source(int r, Block what) {
  return what == Block::kPairs
             ? detail::str_cat("pairs received from rank ", r, " for this rank's range")
             : detail::str_cat("selection received from rank ", r);
}

}  // namespace

void check_block(int me, int r, Block what, int64_t bad, int64_t count, int64_t value, int64_t prev,
                 int64_t lo, int64_t hi) {
  TERSE_CHECK(bad < 0, CorruptData, kName, " on rank ", me, ": ", block_source(r, what),
              ": at position ", bad, " of ", count, ", ",
              sparse_detail::bad_index_reason(value, prev, lo, hi),
              "; the data was corrupted between ranks or rank ", r,
              " does not run this algorithm's wire format");
}

int64_t check_received_counts(const std::vector<int64_t>& counts, int64_t lo, int64_t hi, int me) {
  int64_t total = 0;
  for (size_t r = 0; r < counts.size(); ++r) {
    const int64_t cnt = counts[r];
    TERSE_CHECK(cnt >= 0 && cnt <= hi - lo, CorruptData, kName, " on rank ", me, ": rank ", r,
                " announced ", cnt, " pairs for this rank's range [", lo, ", ", hi,
                ") (must be in [0, ", hi - lo,
                "]); the data was corrupted between ranks or "
                "rank ",
                r, " holds other boundaries");
    total += cnt;
  }
  return total;
}

std::vector<int64_t> gather_candidate_counts(Communicator& c, int64_t mine,
                                             const std::vector<int64_t>& b) {
  const int n = c.size();
  std::vector<int64_t> counts(static_cast<size_t>(n), mine);
  if (n == 1) return counts;
  host_all_gather(c, TensorView::of(&mine, 1), TensorView::of(counts.data(), n));
  for (size_t r = 0; r < counts.size(); ++r) {
    const int64_t cnt = counts[r];
    const int64_t rsize = b[r + 1] - b[r];
    TERSE_CHECK(cnt >= 0 && cnt <= rsize, CorruptData, kName, " on rank ", c.rank(), ": rank ", r,
                " announced ", cnt, " candidates for its range of ", rsize,
                " elements; the data was corrupted between ranks or rank ", r,
                " does not run this algorithm");
  }
  return counts;
}

void check_fixed_block(int me, int r, Block what, const int32_t* idx, const float* val,
                       int64_t size, int64_t lo, int64_t hi, int64_t& real) {
  const std::string bad = fixed_block_problem(idx, val, size, lo, hi, real);
  TERSE_CHECK(bad.empty(), CorruptData, kName, " on rank ", me, ": ", block_source(r, what), ": ",
              bad, "; the data was corrupted between ranks or rank ", r,
              " does not run this algorithm's wire format (quota=fixed)");
}

std::vector<int64_t> rebalance_positions(int64_t s, int world) {
  std::vector<int64_t> pos;
  for (int r = 1; r < world; ++r) pos.push_back(r * s / world);
  return pos;
}

SparseAllReduceReport sparse_path_report(int64_t numel, int world) {
  SparseAllReduceReport report;
  report.path = "sparse";
  report.bytes_dense = ring_all_reduce_bytes(static_cast<uint64_t>(numel) * sizeof(float), world);
  return report;
}

void set_water_fill_bytes(SparseAllReduceReport& report, int world, int64_t my_selected) {
  report.sent_pairs_phase3 = world > 1 ? report.selected - my_selected : 0;
  const uint64_t others = static_cast<uint64_t>(world - 1);
  report.bytes_control = others * (kHeaderWords + 2) * sizeof(int64_t);
  report.bytes_sent =
      report.bytes_control +
      kPairBytes * static_cast<uint64_t>(report.sent_pairs_phase1 + report.sent_pairs_phase3);
}

void set_fixed_bytes(SparseAllReduceReport& report, int world, int64_t budget, int64_t my_quota) {
  // Padding included: the blocks are what goes on the wire.
  report.sent_pairs_phase1 = world > 1 ? budget - my_quota : 0;
  report.sent_pairs_phase3 = world > 1 ? budget - my_quota : 0;
  report.bytes_control = recursive_doubling_bytes(kFixedControlBytes, world);
  report.bytes_sent =
      report.bytes_control +
      kPairBytes * static_cast<uint64_t>(report.sent_pairs_phase1 + report.sent_pairs_phase3);
}

}  // namespace sparse_all_reduce_detail

std::vector<int64_t> SparseAllReduce::fixed_quotas(int64_t budget, int world) {
  TERSE_CHECK(world >= 1 && budget >= 0, InvalidArgument,
              "fixed_quotas needs budget >= 0 and world >= 1; got budget ", budget, ", world ",
              world);
  std::vector<int64_t> c(static_cast<size_t>(world), budget / world);
  for (int64_t r = 0; r < budget % world; ++r) ++c[static_cast<size_t>(r)];
  return c;
}

uint64_t SparseAllReduce::fixed_bytes_per_rank(int64_t budget, int world) {
  TERSE_CHECK(world >= 1 && budget >= 0, InvalidArgument,
              "fixed_bytes_per_rank needs budget >= 0 and world >= 1; got budget ", budget,
              ", world ", world);
  if (world == 1) return 0;
  const uint64_t others = static_cast<uint64_t>(budget - budget / world);
  return 2 * kPairBytes * others + recursive_doubling_bytes(kFixedControlBytes, world);
}

int64_t SparseAllReduce::fixed_min_budget(int world) {
  TERSE_CHECK(world >= 1, InvalidArgument, "fixed_min_budget needs world >= 1; got ", world);
  // fixed_bytes_per_rank(k) <= 2 k 8 <=> 2 x 8 floor(k / world) >= control x ceil(log2 world),
  // i.e. floor(k / world) >= m: the smallest such k is world x m.
  const uint64_t control = recursive_doubling_bytes(kFixedControlBytes, world);
  const int64_t m = static_cast<int64_t>((control + 2 * kPairBytes - 1) / (2 * kPairBytes));
  return world * m;
}

std::vector<int64_t> SparseAllReduce::quotas(int64_t budget,
                                             const std::vector<int64_t>& candidates) {
  const size_t n = candidates.size();
  std::vector<int64_t> q(n, -1);
  int64_t rem = budget;
  size_t active = n;
  // Water-filling: equal shares (the first rem mod active ranks one more); a range with fewer
  // candidates than its share takes them all and its surplus goes round again.
  while (active > 0) {
    const int64_t un = static_cast<int64_t>(active);
    std::vector<int64_t> share(n, 0);
    int64_t pos = 0;
    bool saturated = false;
    for (size_t r = 0; r < n; ++r) {
      if (q[r] >= 0) continue;
      share[r] = rem / un + (pos++ < rem % un ? 1 : 0);
      if (candidates[r] <= share[r]) saturated = true;
    }
    for (size_t r = 0; r < n; ++r) {
      if (q[r] >= 0) continue;
      if (!saturated) {
        q[r] = share[r];
      } else if (candidates[r] <= share[r]) {
        q[r] = candidates[r];
        rem -= candidates[r];
        --active;
      }
    }
    if (!saturated) break;
  }
  return q;
}

std::vector<int64_t> SparseAllReduce::equal_boundaries(int64_t numel, int world) {
  TERSE_CHECK(world >= 1 && numel >= 0, InvalidArgument,
              "equal_boundaries needs numel >= 0 and world >= 1; got numel ", numel, ", world ",
              world);
  std::vector<int64_t> b(static_cast<size_t>(world) + 1);
  for (int r = 0; r <= world; ++r) b[static_cast<size_t>(r)] = r * numel / world;
  return b;
}

void SparseAllReduce::set_boundaries(std::vector<int64_t> boundaries) {
  const int n = comm().size();
  TERSE_CHECK(boundaries.size() == static_cast<size_t>(n) + 1, InvalidArgument, kName, " on rank ",
              comm().rank(), ": set_boundaries got ", boundaries.size(), " values for ", n,
              " ranks; pass world size + 1 (a checkpoint of another world "
              "size does not fit: drop the entry to start from equal ranges)");
  TERSE_CHECK(boundaries[0] == 0, CorruptData, kName, " on rank ", comm().rank(),
              ": the first boundary is ", boundaries[0],
              " (must be 0); the checkpoint entry is corrupt");
  for (size_t r = 1; r < boundaries.size(); ++r) {
    TERSE_CHECK(boundaries[r] >= boundaries[r - 1] && boundaries[r] <= (int64_t{1} << 31),
                CorruptData, kName, " on rank ", comm().rank(), ": boundary ", r, " is ",
                boundaries[r], " after ", boundaries[r - 1],
                " (must be non-decreasing, at most 2^31); the checkpoint entry is corrupt");
  }
  boundaries_ = std::move(boundaries);
}

void SparseAllReduce::rebalance(int64_t s, const std::vector<int64_t>& picks, int64_t numel) {
  const int n = comm().size();
  if (s == 0 || n == 1) return;
  std::vector<int64_t> b;
  b.reserve(static_cast<size_t>(n) + 1);
  b.push_back(0);
  b.insert(b.end(), picks.begin(), picks.end());
  b.push_back(numel);
  if (numel >= n) {
    // Keep every range non-empty: each later range needs at least one element.
    for (int r = 1; r < n; ++r) {
      const size_t ur = static_cast<size_t>(r);
      b[ur] = std::max(b[ur], b[ur - 1] + 1);
    }
    for (int r = n - 1; r >= 1; --r) {
      const size_t ur = static_cast<size_t>(r);
      b[ur] = std::min(b[ur], b[ur + 1] - 1);
    }
  }
  boundaries_ = std::move(b);
}

SparseAllReduceReport SparseAllReduce::run(const SparseVector& mine, int64_t budget,
                                           TensorView out) {
  const std::string arg_error = check_arguments(mine, out, comm(), boundaries_);
  // CUDA views: phase 0 looks at my pairs on their GPU, phases 1 to 4 run there
  // (sparse_all_reduce_device.cc). The views' GPU is current throughout (the caller's restored).
  const bool gpu = arg_error.empty() && out.device.is_cuda();
  const auto current = gpu ? std::make_unique<CudaCurrentDevice>(out.device.index) : nullptr;
  if (options_.quota == Quota::kFixed) return run_fixed(mine, budget, out, arg_error);
  return run_water_fill(mine, budget, out, arg_error);
}

SparseAllReduceReport SparseAllReduce::run_water_fill(const SparseVector& mine, int64_t budget,
                                                      TensorView out,
                                                      const std::string& arg_error) {
  Communicator& c = comm();
  const int n = c.size();
  const int me = c.rank();
  const size_t un = static_cast<size_t>(n);

  // 0. Header. A rank with bad arguments still joins, so the others fail at once.
  if (arg_error.empty() && boundaries_.empty()) boundaries_ = equal_boundaries(out.numel, n);
  std::vector<int64_t> header(kHeaderWords, -1);
  if (!arg_error.empty()) {
    header[kCount] = kArgumentError;
  } else {
    header[kCount] = mine.count;
    header[kNumel] = out.numel;
    header[kBudget] = budget;
    const OwnPairs own = check_own_pairs(mine, out.numel);
    header[kBadPos] = own.bad;
    header[kBadValue] = own.bad_value;
    header[kNonFinitePos] = own.non_finite;
    header[kBoundsHash] = bounds_hash(boundaries_);
  }
  std::vector<int64_t> headers(un * kHeaderWords);
  if (n > 1) {
    host_all_gather(c, TensorView::of(header.data(), kHeaderWords),
                    TensorView::of(headers.data(), static_cast<int64_t>(headers.size())));
  } else {
    headers = header;
  }
  auto h = [&](int r, int64_t word) {
    return headers[static_cast<size_t>(r) * kHeaderWords + word];
  };
  TERSE_CHECK(arg_error.empty(), InvalidArgument, kName, " on rank ", me, " of ", n, ": ",
              arg_error);
  for (int r = 0; r < n; ++r) {
    TERSE_CHECK(h(r, kCount) != kArgumentError, CommError, kName, " on rank ", me, ": rank ", r,
                " passed invalid arguments (its own error says which); fix that rank's call");
  }
  for (int r = 1; r < n; ++r) {
    TERSE_CHECK(h(r, kNumel) == h(0, kNumel), InvalidArgument, kName, " on rank ", me, ": rank ", r,
                " passed a vector of ", h(r, kNumel), " elements but rank 0 passed ", h(0, kNumel),
                "; every rank must pass the same bucket");
    TERSE_CHECK(h(r, kBudget) == h(0, kBudget), InvalidArgument, kName, " on rank ", me, ": rank ",
                r, " passed budget ", h(r, kBudget), " but rank 0 passed ", h(0, kBudget),
                "; every rank must compute the same budget (the same density)");
  }
  const int64_t numel = out.numel;
  TERSE_CHECK(budget >= 0 && budget <= numel, InvalidArgument, kName, " on rank ", me,
              ": every rank passed budget ", budget, " for a vector of ", numel,
              " elements; pass 0 <= budget <= numel");
  for (int r = 1; r < n; ++r) {
    TERSE_CHECK(h(r, kBoundsHash) == h(0, kBoundsHash), InvalidArgument, kName, " on rank ", me,
                ": rank ", r, " holds different boundaries than rank 0 (hash ", h(r, kBoundsHash),
                " vs ", h(0, kBoundsHash),
                "); restore every rank from the same checkpoint or none");
  }
  for (int r = 0; r < n; ++r) {
    const int64_t cnt = h(r, kCount);
    TERSE_CHECK(cnt >= 0 && cnt <= numel, CorruptData, kName, " on rank ", me, ": rank ", r,
                " announced ", cnt, " pairs for a vector of ", numel,
                " elements (must be in [0, numel]); the header was corrupted between ranks or "
                "rank ",
                r, " does not run this algorithm");
    TERSE_CHECK(h(r, kBadPos) < 0, CorruptData, kName, " on rank ", me, ": rank ", r,
                " sent bad pairs: index ", h(r, kBadValue), " at position ", h(r, kBadPos),
                " of its ", cnt, " (indices must be strictly increasing in [0, ", numel,
                ")); fix the compressor that produced rank ", r, "'s pairs");
    TERSE_CHECK(h(r, kNonFinitePos) < 0, NumericalError, kName, " on rank ", me, ": rank ", r,
                " holds a NaN or Inf value at position ", h(r, kNonFinitePos), " of its ", cnt,
                " pairs; every rank stops: lower the learning rate or resume from a checkpoint");
  }
  if (out.device.is_cuda()) return water_fill_device(mine, budget, out);

  const std::vector<int64_t>& b = boundaries_;
  const int64_t lo = b[static_cast<size_t>(me)], hi = b[static_cast<size_t>(me) + 1];
  SparseAllReduceReport report = sparse_path_report(numel, n);

  // 1. Split my pairs by range and send each range's pairs to its owner.
  std::vector<int64_t> send_counts(un), recv_counts(un);
  for (int r = 0; r < n; ++r) {
    const int32_t* first = mine.indices;
    const int32_t* last = mine.indices + mine.count;
    const int32_t* from = std::lower_bound(first, last, b[static_cast<size_t>(r)]);
    const int32_t* to = std::lower_bound(first, last, b[static_cast<size_t>(r) + 1]);
    send_counts[static_cast<size_t>(r)] = to - from;
    if (r != me) report.sent_pairs_phase1 += to - from;
  }
  std::vector<int32_t> recv_idx;
  std::vector<float> recv_val;
  if (n > 1) {
    host_all_to_all(c, TensorView::of(send_counts.data(), n),
                    TensorView::of(recv_counts.data(), n));
    const int64_t total_in = check_received_counts(recv_counts, lo, hi, me);
    recv_idx.resize(static_cast<size_t>(total_in));
    recv_val.resize(static_cast<size_t>(total_in));
    host_all_to_allv(c, TensorView::of(const_cast<int32_t*>(mine.indices), mine.count), send_counts,
                     TensorView::of(recv_idx.data(), total_in), recv_counts);
    host_all_to_allv(c, TensorView::of(const_cast<float*>(mine.values), mine.count), send_counts,
                     TensorView::of(recv_val.data(), total_in), recv_counts);
  } else {
    recv_counts[0] = mine.count;
    recv_idx.assign(mine.indices, mine.indices + mine.count);
    recv_val.assign(mine.values, mine.values + mine.count);
  }
  // Validate every block before writing anything: a corrupt peer must not cause an
  // out-of-bounds write.
  int64_t offset = 0;
  for (int r = 0; r < n; ++r) {
    const int64_t cnt = recv_counts[static_cast<size_t>(r)];
    const int32_t* idx = recv_idx.data() + offset;
    const int64_t bad = first_bad_index(idx, cnt, lo, hi);
    if (bad >= 0)
      check_block(me, r, Block::kPairs, bad, cnt, idx[bad], prev_index(idx, bad, lo), lo, hi);
    offset += cnt;
  }

  // 2. Sum over my range in rank order, then keep my quota of the largest |sum|.
  RangeSums rs = sum_range(lo, hi, {{0, recv_idx.size()}}, recv_idx, recv_val);
  const std::vector<float>& sums = rs.sums;
  std::vector<int32_t>& cand = rs.cand;
  // Every rank learns every range's candidate count, so every rank computes the same quotas
  // (and so the phase-3 counts) without another message.
  const std::vector<int64_t> cand_counts =
      gather_candidate_counts(c, static_cast<int64_t>(cand.size()), b);
  const std::vector<int64_t> sel_counts = quotas(budget, cand_counts);
  const int64_t q = sel_counts[static_cast<size_t>(me)];
  keep_largest(cand, sums, lo, q);
  std::vector<float> cand_val(cand.size());
  for (size_t i = 0; i < cand.size(); ++i) cand_val[i] = sums[static_cast<size_t>(cand[i] - lo)];
  const int64_t my_sel = static_cast<int64_t>(cand.size());

  // 3. Gather every range's selection.
  std::vector<int32_t> all_idx;
  std::vector<float> all_val;
  if (n > 1) {
    int64_t total = 0;
    for (const int64_t cnt : sel_counts) total += cnt;
    all_idx.resize(static_cast<size_t>(total));
    all_val.resize(static_cast<size_t>(total));
    host_all_gatherv(c, TensorView::of(cand.data(), my_sel), TensorView::of(all_idx.data(), total),
                     sel_counts);
    host_all_gatherv(c, TensorView::of(cand_val.data(), my_sel),
                     TensorView::of(all_val.data(), total), sel_counts);
    offset = 0;
    for (int r = 0; r < n; ++r) {
      const int64_t cnt = sel_counts[static_cast<size_t>(r)];
      const int64_t rlo = b[static_cast<size_t>(r)], rhi = b[static_cast<size_t>(r) + 1];
      const int32_t* idx = all_idx.data() + offset;
      const int64_t bad = first_bad_index(idx, cnt, rlo, rhi);
      if (bad >= 0) {
        check_block(me, r, Block::kSelection, bad, cnt, idx[bad], prev_index(idx, bad, rlo), rlo,
                    rhi);
      }
      offset += cnt;
    }
  } else {
    all_idx = cand;
    all_val = cand_val;
  }
  // 4. out, and which of my pairs made it.
  write_result(all_idx, all_val, n, options_.reduction, mine, nullptr, out, report);
  set_water_fill_bytes(report, n, my_sel);
  rebalance(static_cast<int64_t>(all_idx.size()), rebalance_picks(all_idx, n), numel);
  return report;
}

SparseAllReduceReport SparseAllReduce::run_fixed(const SparseVector& mine, int64_t budget,
                                                 TensorView out, const std::string& arg_error) {
  Communicator& c = comm();
  const int n = c.size();
  const int me = c.rank();
  const size_t un = static_cast<size_t>(n);

  // 0. Validation in one all_reduce MAX of kFixedWords, whatever N. A rank with bad arguments
  // still joins, so the others fail at once.
  TERSE_CHECK(n <= kFixedMaxWorld, InvalidArgument, kName, " on rank ", me,
              ": quota=fixed runs on at most ", kFixedMaxWorld,
              " ranks (its validation word holds rank + 1 in ", kErrorRankBits, " bits); got ", n,
              "; use quota=waterfill");
  if (arg_error.empty() && boundaries_.empty()) boundaries_ = equal_boundaries(out.numel, n);
  std::vector<int64_t> w(kFixedWords, kNone);
  int64_t my_bad = -1;  // the position of my first bad index
  int64_t my_bad_value = -1;
  if (!arg_error.empty()) {
    w[kFError] = error_word(FixedError::kBadArguments, me, 0);
  } else {
    const int64_t hash = agreement_hash(out.numel, budget, bounds_hash(boundaries_));
    w[kFHashMax] = hash;
    w[kFHashNotMin] = ~hash;
    // Positions are < count <= numel <= 2^31: they fit the 32-bit payload.
    const OwnPairs own = check_own_pairs(mine, out.numel);
    my_bad = own.bad;
    my_bad_value = own.bad_value;
    const int64_t nf = own.non_finite;
    w[kFError] = my_bad >= 0 ? error_word(FixedError::kBadPair, me, static_cast<uint32_t>(my_bad))
                 : nf >= 0   ? error_word(FixedError::kNonFinite, me, static_cast<uint32_t>(nf))
                             : 0;
  }
  if (n > 1) host_all_reduce(c, TensorView::of(w.data(), kFixedWords), ReduceOp::kMax);
  TERSE_CHECK(arg_error.empty(), InvalidArgument, kName, " on rank ", me, " of ", n, ": ",
              arg_error);
  TERSE_CHECK(error_kind(w[kFError]) != FixedError::kBadArguments, CommError, kName, " on rank ",
              me, ": rank ", error_rank(w[kFError]),
              " passed invalid arguments (its own error says which; of several such ranks the "
              "highest is named); fix that rank's call");
  const int64_t numel = out.numel;
  auto check_budget_range = [&] {
    TERSE_CHECK(budget >= 0 && budget <= numel, InvalidArgument, kName, " on rank ", me,
                ": every rank passed budget ", budget, " for a vector of ", numel,
                " elements; pass 0 <= budget <= numel");
  };
  if (w[kFHashMax] != ~w[kFHashNotMin]) {
    // Some rank disagrees on numel, budget or the boundaries: every rank sees it, so every rank
    // joins this second all_reduce, which says which of them and the values seen.
    const int64_t bh = bounds_hash(boundaries_);
    std::vector<int64_t> d = {numel, -numel, budget, -budget, bh, -bh};
    host_all_reduce(c, TensorView::of(d.data(), kDetailWords), ReduceOp::kMax);
    TERSE_CHECK(d[kDNumelMax] == -d[kDNumelNegMin], InvalidArgument, kName, " on rank ", me,
                ": the ranks passed vectors of ", -d[kDNumelNegMin], " to ", d[kDNumelMax],
                " elements (this rank: ", numel, "); every rank must pass the same bucket");
    TERSE_CHECK(d[kDBudgetMax] == -d[kDBudgetNegMin], InvalidArgument, kName, " on rank ", me,
                ": the ranks passed budgets from ", -d[kDBudgetNegMin], " to ", d[kDBudgetMax],
                " (this rank: ", budget,
                "); every rank must compute the same budget (the same density)");
    check_budget_range();
    TERSE_CHECK(d[kDHashMax] == -d[kDHashNegMin], InvalidArgument, kName, " on rank ", me,
                ": the ranks hold different boundaries (hashes from ", -d[kDHashNegMin], " to ",
                d[kDHashMax], ", this rank's ", bh,
                "); restore every rank from the same checkpoint or none");
    // Unreachable: equal numel, budget and boundary hash give equal agreement hashes.
    TERSE_THROW(CommError, kName, " on rank ", me,
                ": the validation hashes differ but numel, budget and boundaries agree; the "
                "validation all_reduce was corrupted between ranks");
  }
  check_budget_range();
  if (error_kind(w[kFError]) == FixedError::kBadPair) {
    // The error word holds the position; the named rank adds the index in one more small
    // all_reduce (every rank sees the same word, so every rank joins).
    const int r = error_rank(w[kFError]);
    int64_t index_bits = 0;
    if (r == me) {
      index_bits = static_cast<int64_t>(static_cast<uint32_t>(static_cast<int32_t>(my_bad_value)));
    }
    if (n > 1) host_all_reduce(c, TensorView::of(&index_bits, 1), ReduceOp::kMax);
    TERSE_THROW(CorruptData, kName, " on rank ", me, ": rank ", r, " sent bad pairs: index ",
                static_cast<int32_t>(static_cast<uint32_t>(index_bits)), " at position ",
                error_payload(w[kFError]), " (indices must be strictly increasing in [0, ", numel,
                ")); fix the compressor that produced rank ", r, "'s pairs");
  }
  if (error_kind(w[kFError]) == FixedError::kNonFinite) {
    const int r = error_rank(w[kFError]);
    TERSE_THROW(NumericalError, kName, " on rank ", me, ": rank ", r,
                " holds a NaN or Inf value at position ", error_payload(w[kFError]),
                " of its pairs; every rank stops: lower the learning rate or resume from a "
                "checkpoint");
  }
  if (out.device.is_cuda()) return fixed_device(mine, budget, out);

  const std::vector<int64_t>& b = boundaries_;
  const int64_t lo = b[static_cast<size_t>(me)], hi = b[static_cast<size_t>(me) + 1];
  const std::vector<int64_t> quota = fixed_quotas(budget, n);
  const int64_t q = quota[static_cast<size_t>(me)];
  SparseAllReduceReport report = sparse_path_report(numel, n);

  // 1. Per range, my c_r pairs of largest |value| (all of them when I hold fewer), padded.
  std::vector<int32_t> send_idx(static_cast<size_t>(budget), kPadIndex);
  std::vector<float> send_val(static_cast<size_t>(budget), 0.0f);
  std::vector<uint8_t> sent(static_cast<size_t>(mine.count), 0);
  std::vector<int64_t> pick;
  int64_t slot = 0;
  for (int r = 0; r < n; ++r) {
    const int32_t* first = mine.indices;
    const int32_t* last = mine.indices + mine.count;
    const int64_t from = std::lower_bound(first, last, b[static_cast<size_t>(r)]) - first;
    const int64_t to = std::lower_bound(first, last, b[static_cast<size_t>(r) + 1]) - first;
    const int64_t cr = quota[static_cast<size_t>(r)];
    pick.clear();
    for (int64_t i = from; i < to; ++i) pick.push_back(i);
    if (to - from > cr) {
      // Positions follow indices, so "lower position" is "lower index".
      auto larger = [&](int64_t x, int64_t y) {
        const float ax = std::fabs(mine.values[x]), ay = std::fabs(mine.values[y]);
        return ax > ay || (ax == ay && x < y);
      };
      std::nth_element(pick.begin(), pick.begin() + cr, pick.end(), larger);
      pick.resize(static_cast<size_t>(cr));
      std::sort(pick.begin(), pick.end());
    }
    for (size_t j = 0; j < pick.size(); ++j) {
      send_idx[static_cast<size_t>(slot) + j] = mine.indices[pick[j]];
      send_val[static_cast<size_t>(slot) + j] = mine.values[pick[j]];
      sent[static_cast<size_t>(pick[j])] = 1;
    }
    slot += cr;
  }
  // Every rank sends c_r to rank r and receives c_me from each: sizes known, nothing to exchange.
  const std::vector<int64_t> recv_counts(un, q);
  std::vector<int32_t> recv_idx;
  std::vector<float> recv_val;
  if (n > 1) {
    recv_idx.resize(un * static_cast<size_t>(q));
    recv_val.resize(un * static_cast<size_t>(q));
    host_all_to_allv(c, TensorView::of(send_idx.data(), budget), quota,
                     TensorView::of(recv_idx.data(), n * q), recv_counts);
    host_all_to_allv(c, TensorView::of(send_val.data(), budget), quota,
                     TensorView::of(recv_val.data(), n * q), recv_counts);
  } else {
    recv_idx = send_idx;
    recv_val = send_val;
  }
  // Validate every block before writing anything: a corrupt peer must not cause an
  // out-of-bounds write.
  std::vector<int64_t> real(un, 0);
  for (int r = 0; r < n; ++r) {
    const size_t at = static_cast<size_t>(r) * static_cast<size_t>(q);
    check_fixed_block(me, r, Block::kPairs, recv_idx.data() + at, recv_val.data() + at, q, lo, hi,
                      real[static_cast<size_t>(r)]);
  }

  // 2. Sum over my range in rank order, then keep my c_me of the largest |sum|, padded.
  std::vector<std::pair<size_t, size_t>> spans;  // each rank's real pairs, before its padding
  for (int r = 0; r < n; ++r) {
    const size_t at = static_cast<size_t>(r) * static_cast<size_t>(q);
    spans.emplace_back(at, at + static_cast<size_t>(real[static_cast<size_t>(r)]));
  }
  RangeSums rs = sum_range(lo, hi, spans, recv_idx, recv_val);
  const std::vector<float>& sums = rs.sums;
  std::vector<int32_t>& cand = rs.cand;
  keep_largest(cand, sums, lo, q);
  std::vector<float> cand_val(static_cast<size_t>(q), 0.0f);
  for (size_t i = 0; i < cand.size(); ++i) cand_val[i] = sums[static_cast<size_t>(cand[i] - lo)];
  cand.resize(static_cast<size_t>(q), kPadIndex);

  // 3. Gather every range's block (sizes c_r, known everywhere).
  std::vector<int32_t> all_idx;
  std::vector<float> all_val;
  if (n > 1) {
    all_idx.resize(static_cast<size_t>(budget));
    all_val.resize(static_cast<size_t>(budget));
    host_all_gatherv(c, TensorView::of(cand.data(), q), TensorView::of(all_idx.data(), budget),
                     quota);
    host_all_gatherv(c, TensorView::of(cand_val.data(), q), TensorView::of(all_val.data(), budget),
                     quota);
  } else {
    all_idx = cand;
    all_val = cand_val;
  }
  std::vector<int32_t> selected;
  std::vector<float> selected_val;
  int64_t offset = 0;
  for (int r = 0; r < n; ++r) {
    const int64_t cr = quota[static_cast<size_t>(r)];
    const int64_t rlo = b[static_cast<size_t>(r)], rhi = b[static_cast<size_t>(r) + 1];
    int64_t rreal = 0;
    check_fixed_block(me, r, Block::kSelection, all_idx.data() + offset, all_val.data() + offset,
                      cr, rlo, rhi, rreal);
    selected.insert(selected.end(), all_idx.begin() + offset, all_idx.begin() + offset + rreal);
    selected_val.insert(selected_val.end(), all_val.begin() + offset,
                        all_val.begin() + offset + rreal);
    offset += cr;
  }
  // 4. out, and kept: sent in phase 1 and selected (so its value is in out).
  write_result(selected, selected_val, n, options_.reduction, mine, sent.data(), out, report);
  set_fixed_bytes(report, n, budget, q);
  rebalance(static_cast<int64_t>(selected.size()), rebalance_picks(selected, n), numel);
  return report;
}

}  // namespace terse

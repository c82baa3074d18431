#pragma once

#include <cstdint>
#include <vector>

#include "terse/comm/algorithms/algorithm.h"
#include "terse/comm/algorithms/sparse_all_gather.h"
#include "terse/core/tensor_view.h"

namespace terse {

struct SparseAllReduceReport : AlgorithmReport {
  // Pairs in the global result (sum of the per-range selections; <= budget).
  int64_t selected = 0;
  // kept[i] == 1 when pair i of this rank's input is in the global result; the caller returns
  // the others (dropped) to its error-feedback residual.
  std::vector<uint8_t> kept;
  int64_t dropped = 0;
  // Pairs this rank put on the wire: phase 1, its pairs of OTHER ranks' ranges; phase 3, the
  // ring all-gatherv equivalent, selected minus this rank's own selection.
  int64_t sent_pairs_phase1 = 0;
  int64_t sent_pairs_phase3 = 0;
  // Of bytes_sent, the control words: (N-1) x (header + one phase-1 count + one candidate count).
  uint64_t bytes_control = 0;
};

// Ok-Topk's sparse all-reduce (Li, Hoefler, "Near-optimal sparse allreduce for distributed deep
// learning", PPoPP 2022): a sparse reduce-scatter by index range, then a budgeted all-gather.
// Rank r owns the index range [b_r, b_{r+1}) of boundaries() (b_0 = 0, b_N = numel).
//   0. all_gather a 7 x i64 header per rank (count, numel, budget, first bad index and its
//      value, first non-finite value, a hash of the boundaries): every bad call or bad pair
//      fails on EVERY rank with the same error before any payload moves;
//   1. split my (sorted) pairs by range; all_to_all the per-destination counts; all_to_allv the
//      indices (i32), then the values (f32);
//   2. rank r sums what it received, in rank order (its own pairs included), over its range:
//      s_i = sum_{p=0}^{N-1} x_{p,i} for its c_r candidates (indices some rank sent);
//      all_gather c_r; every rank computes the quotas q_r: k split evenly (the first k mod N
//      ranks one more), and where a range has c_r < its share, it keeps all c_r and the
//      surplus is split again over the others (water-filling), so sum_r q_r = min(k, sum c_r)
//      and budget >= the union of all pairs keeps everything; rank r keeps the q_r candidates
//      of largest |s_i| (ties: lower index first), sorted by index;
//   3. all_gatherv the selected indices, then values (counts q_r known everywhere; blocks in
//      rank order over increasing ranges: the gathered list is globally sorted); out = 0 except
//      out[i] = s_i (kAverage: s_i / N) at the selected i;
//   4. kept flags: which of my pairs made the result.
// Afterwards the boundaries are rebalanced from the gathered indices G (identical on every rank,
// no message): b_r = G[floor(r |G| / N)], so each range holds ~|G|/N selected indices; every
// range stays non-empty when numel >= N; unchanged when G is empty.
// The result holds exactly min(k, number of distinct indices over all ranks) pairs.
// Bit-exact: equals "sum every rank's pairs in rank order into zeros, keep the per-range top q_r
// of |sum|, divide by N" computed in one process.
// Wire format: all_to_all of N i64 counts; all_to_allv i32 indices, f32 values; all_gather of one
// i64 candidate count; all_gatherv i32 indices, f32 values. Every received block is checked (inside
// the receiver's range, resp. the sender's range; strictly increasing; counts within bounds) before
// anything is written.
// Cost per rank: latency (N-1) all_to_allv messages + an (N-1)-step ring all-gatherv (plus the
// header and count collectives). Bytes: bytes_sent = bytes_control + 8 (sent_pairs_phase1 +
// sent_pairs_phase3); phase 1 <= count, phase 3 <= k, so with count <= k every rank sends at
// most 2 * k * 8 bytes of pairs (+ bytes_control = 72 (N-1)), independent of N. SparseAllGather
// sends (N-1) * 8 * count instead.
// Errors: bad local arguments (out not CPU f32, count out of [0, numel], null buffers, numel >
// 2^31, boundaries not ending at numel) -> InvalidArgument here and CommError on the others;
// numel, budget or boundaries differing between ranks, or a budget outside [0, numel] ->
// InvalidArgument on every rank; a non-finite value -> NumericalError on every rank; a count or
// index out of range or not increasing (in the header or in a received block) -> CorruptData on
// every rank that sees it, naming the rank that sent it.
// N == 1: the result is the top-k of my own pairs; no messages.
class SparseAllReduce : public Algorithm {
 public:
  struct Options {
    SparseReduction reduction = SparseReduction::kAverage;
  };

  explicit SparseAllReduce(Communicator& comm) : SparseAllReduce(comm, Options()) {}
  SparseAllReduce(Communicator& comm, Options options) : Algorithm(comm), options_(options) {}

  const char* name() const override { return "sparse_all_reduce"; }
  const Options& options() const { return options_; }

  // Combines every rank's `mine` into `out` (dense f32, CPU, the same numel on every rank),
  // keeping at most `budget` pairs (the same on every rank, 0 <= budget <= numel). Blocks; each
  // verb waits at most comm().timeout(). Rebalances boundaries() on success.
  SparseAllReduceReport run(const SparseVector& mine, int64_t budget, TensorView out);

  // The current ranges: empty until the first run (which starts from equal_boundaries) or
  // set_boundaries. Every rank must hold the same ones (run checks).
  const std::vector<int64_t>& boundaries() const { return boundaries_; }
  // For checkpoints: InvalidArgument when the size is not comm().size() + 1; CorruptData when
  // b_0 != 0 or the values decrease. run() checks that b_N equals its numel.
  void set_boundaries(std::vector<int64_t> boundaries);
  // b_r = floor(r * numel / world): equal ranges by element count.
  static std::vector<int64_t> equal_boundaries(int64_t numel, int world);
  // Each range's share of `budget` given its candidate counts (step 2): water-filling, so
  // sum q_r = min(budget, sum candidates) and q_r <= candidates[r].
  static std::vector<int64_t> quotas(int64_t budget, const std::vector<int64_t>& candidates);

 private:
  void rebalance(const std::vector<int32_t>& selected, int64_t numel);

  Options options_;
  std::vector<int64_t> boundaries_;
};

}  // namespace terse

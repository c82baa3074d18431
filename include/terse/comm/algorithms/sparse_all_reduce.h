#pragma once

#include <cstdint>
#include <memory>
#include <string>
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
  // Of bytes_sent, the control words. kWaterFill: (N-1) x (header + one phase-1 count + one
  // candidate count). kFixed: the validation all_reduce, 24 bytes x ceil(log2 N).
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
// Errors: bad local arguments (out not f32, the pairs and out on different devices, host views on
// NCCL, count out of [0, numel], null buffers, numel > 2^31, boundaries not ending at numel) ->
// InvalidArgument here and CommError on the others; numel, budget or boundaries differing
// between ranks, or a budget outside [0, numel] -> InvalidArgument on every rank; a non-finite
// value -> NumericalError on every rank; a count or index out of range or not increasing (in the
// header or in a received block) -> CorruptData on every rank that sees it, naming the rank that
// sent it.
// N == 1: the result is the top-k of my own pairs; no messages.
// CUDA views (the pairs and out on one GPU): every step above runs on that GPU (the pairs move in
// GPU memory on NCCL, through host copies on a host communicator; the host sees only the control
// words, the counts and the block verdicts), with every result the CPU's bit for bit
// (docs/collectives.md, "On the GPU").
//
// Options::quota = Quota::kFixed: the same three phases with no per-peer control word, so the
// bytes per rank do not grow with N. Every range r has the fixed share c_r of the budget k
// (fixed_quotas: k split evenly, the first k mod N ranges one more), known on every rank
// without a message.
//   0. all_reduce MAX of 3 x i64: max and ~min (max of ~h) of one hash of numel, budget and the
//      boundary hash, and one error word: the most important problem over all ranks (bad
//      arguments > bad pair index > non-finite value; bits [62..60] the kind, [59..32] the rank
//      + 1, [31..0] the position), so MAX names the highest rank with the most important one.
//      Every bad call or bad pair still fails on EVERY rank with the same kind of error before
//      any payload moves, in 24 bytes whatever N (N < 2^28, else InvalidArgument). Only on an
//      error path, where every rank sees the same words, a second small all_reduce adds the
//      details: when the hashes differ, max and -min of numel, budget and the boundary hash
//      (which of them differs, the values seen); for a bad pair, the named rank's bad index;
//   1. rank p sends range r's owner exactly c_r pairs: all of its pairs in range r when it has
//      at most c_r, else the c_r of largest |value| (ties: lower index), sorted by index; the
//      block is padded after the real pairs with kPadIndex (-1) / 0.0f. Block sizes are the c_r,
//      known everywhere, so the all_to_allv (indices, then values) needs no count exchange;
//      pairs left out are dropped here (kept = 0: the caller feeds them back into its residual);
//   2. rank r sums the real pairs received, in rank order (its own included), and keeps the
//      q_r = c_r of largest |sum| (ties: lower index), sorted by index, padded to c_r;
//   3. all_gatherv of the c_r-blocks (sizes known everywhere: no count exchange); out as above.
//      kept[i] == 1 exactly when pair i was sent in phase 1 and its index was selected, i.e.
//      exactly when its value is part of out.
// The boundaries are rebalanced from the gathered real indices as above (each range holds about
// |G| / N selected indices, so the next step's fixed shares drop little).
// Bit-exact: equals "per rank and range, keep the top c_r of |value|; sum the kept pairs in rank
// order into zeros; per range keep the top c_r of |sum|; divide by N" computed in one process.
// Every received block is checked before use (real indices inside the receiver's range, resp.
// the sender's range, strictly increasing; padding only after the real pairs, with value 0;
// real values finite) -> CorruptData naming the sending rank.
// Bytes (fixed_bytes_per_rank): rank p sends k - c_p pairs in phase 1 and k - c_p in phase 3
// (the ring all-gatherv), 8 bytes each, padding included, plus bytes_control = 24 ceil(log2 N):
// the recursive-doubling all_reduce sends its whole 24-byte message in each of ceil(log2 N)
// rounds (a model: an MPI may add a round for N not a power of two, or pick another algorithm).
// The largest, at c_p = floor(k / N), is 16 (k - floor(k / N)) + 24 ceil(log2 N), which is
// <= 2 k 8 exactly when 16 floor(k / N) >= 24 ceil(log2 N), i.e. when
//   k >= fixed_min_budget(N) = N ceil(3 ceil(log2 N) / 2)   (N = 1: any k; 0 bytes)
// (N = 8: k >= 40; N = 1024: k >= 15360; ResNet-50's k = 25557 holds for every N <= 1024).
// Below it only the control words break the bound.
class SparseAllReduce : public Algorithm {
 public:
  // How phase 2 splits the budget over the ranges.
  enum class Quota : uint8_t {
    // Water-filling over the candidate counts; needs the count exchanges (72 (N-1) bytes).
    kWaterFill = 0,
    // Fixed shares c_r; no per-peer control word (see above).
    kFixed = 1,
  };
  // The padding index of a kFixed block (its value is 0.0f).
  static constexpr int32_t kPadIndex = -1;

  struct Options {
    SparseReduction reduction = SparseReduction::kAverage;
    Quota quota = Quota::kWaterFill;
  };

  explicit SparseAllReduce(Communicator& comm) : SparseAllReduce(comm, Options()) {}
  SparseAllReduce(Communicator& comm, Options options);
  ~SparseAllReduce() override;

  const char* name() const override { return "sparse_all_reduce"; }
  const Options& options() const { return options_; }

  // Combines every rank's `mine` into `out` (dense f32 on mine's device, the same numel on every
  // rank), keeping at most `budget` pairs (the same on every rank, 0 <= budget <= numel). Blocks;
  // each verb waits at most comm().timeout(). Rebalances boundaries() on success.
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
  // kFixed: c_r = floor(budget / world), plus one for r < budget mod world.
  static std::vector<int64_t> fixed_quotas(int64_t budget, int world);
  // kFixed: the largest bytes_sent of any rank for this budget and world size (the model above;
  // run() reports exactly this on the rank owning a range of share floor(budget / world)).
  static uint64_t fixed_bytes_per_rank(int64_t budget, int world);
  // kFixed: the smallest budget with fixed_bytes_per_rank(budget, world) <= 2 budget 8:
  // world ceil(3 ceil(log2 world) / 2), 0 for one rank.
  static int64_t fixed_min_budget(int world);

 private:
  struct DeviceBuffers;
  // The two modes, given run()'s verdict on this rank's arguments ("" when usable). Phase 0 runs
  // here on either device; on CUDA views the rest runs in the *_device members.
  SparseAllReduceReport run_water_fill(const SparseVector& mine, int64_t budget, TensorView out,
                                       const std::string& arg_error);
  SparseAllReduceReport run_fixed(const SparseVector& mine, int64_t budget, TensorView out,
                                  const std::string& arg_error);
  // Phases 1 to 4 on the GPU of `out`, after phase 0 passed on every rank
  // (sparse_all_reduce_device.cc).
  SparseAllReduceReport water_fill_device(const SparseVector& mine, int64_t budget, TensorView out);
  SparseAllReduceReport fixed_device(const SparseVector& mine, int64_t budget, TensorView out);
  DeviceBuffers& device_buffers();
  // New boundaries from the s gathered indices: picks[r - 1] is the one at position
  // r * s / N (sparse_all_reduce_detail::rebalance_positions).
  void rebalance(int64_t s, const std::vector<int64_t>& picks, int64_t numel);

  Options options_;
  std::vector<int64_t> boundaries_;
  std::unique_ptr<DeviceBuffers> dev_;
};

}  // namespace terse

#pragma once

// Internal to SparseAllReduce (sparse_all_reduce.cc, the host path; sparse_all_reduce_device.cc,
// the GPU path): the checks of what a rank receives, with their messages, and the report's byte
// counts, shared by both paths so that they throw and report the same.

#include <cstdint>
#include <vector>

#include "terse/comm/communicator.h"

#include "terse/comm/algorithms/sparse_all_reduce.h"

namespace terse::sparse_all_reduce_detail {

constexpr const char* kName = "sparse_all_reduce";

// What a received block is: phase 1's pairs for this rank's range, or phase 3's selection of
// the sender's range.
enum class Block : uint8_t { kPairs, kSelection };

// CorruptData when bad >= 0: the water-filled block of `count` pairs from rank r has its first
// bad index `value` at position `bad` (`prev` the index before it, lo - 1 at position 0) for the
// range [lo, hi).
void check_block(int me, int r, Block what, int64_t bad, int64_t count, int64_t value, int64_t prev,
                 int64_t lo, int64_t hi);

// Phase 1's per-source counts for this rank's range [lo, hi): CorruptData naming the sender of
// one out of [0, hi - lo]. Returns their sum.
int64_t check_received_counts(const std::vector<int64_t>& counts, int64_t lo, int64_t hi, int me);

// Phase 2: every rank's candidate count (this rank's is `mine`), gathered so that every rank
// computes the same quotas without another message, each checked against its range of
// boundaries b: CorruptData naming the sender.
std::vector<int64_t> gather_candidate_counts(Communicator& c, int64_t mine,
                                             const std::vector<int64_t>& b);

// CorruptData unless the kFixed block of `size` slots from rank r is real pairs (indices
// strictly increasing in [lo, hi), finite values), then padding (kPadIndex, value 0). Sets
// `real`, the number of real pairs.
void check_fixed_block(int me, int r, Block what, const int32_t* idx, const float* val,
                       int64_t size, int64_t lo, int64_t hi, int64_t& real);

// The positions r * s / world (r = 1 .. world - 1) of the gathered indices that rebalancing
// reads.
std::vector<int64_t> rebalance_positions(int64_t s, int world);

// A report of the sparse path (not the dense fallback) for numel floats over `world` ranks: its
// path and the dense ring all-reduce's bytes, to compare with.
SparseAllReduceReport sparse_path_report(int64_t numel, int world);

// The report's phase-3 pairs and bytes; report.selected set first.
void set_water_fill_bytes(SparseAllReduceReport& report, int world, int64_t my_selected);
void set_fixed_bytes(SparseAllReduceReport& report, int world, int64_t budget, int64_t my_quota);

}  // namespace terse::sparse_all_reduce_detail

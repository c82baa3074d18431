#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "terse/comm/algorithms/algorithm.h"
#include "terse/core/tensor_view.h"

namespace terse {

// One rank's sparse contribution: `count` (index, value) pairs of a dense f32 vector of `numel`
// elements. Indices are int32, strictly increasing, in [0, numel); counts differ per rank.
// Views, not owned, in the memory of `device` (host memory, or one CUDA device's).
struct SparseVector {
  const int32_t* indices = nullptr;
  const float* values = nullptr;
  int64_t count = 0;
  Device device = Device::cpu();
};

// How the gathered pairs are combined.
enum class SparseReduction : uint8_t { kSum = 0, kAverage = 1 };

struct SparseAllGatherReport : AlgorithmReport {
  bool dense_fallback = false;
  // Pairs over all ranks, and the most any one rank sent.
  int64_t total_count = 0;
  int64_t max_count = 0;
  // Average per-rank bytes of the pair exchange, (N-1)/N * 8 * total_count (a ring
  // all-gatherv): what the fallback rule compares with bytes_dense.
  uint64_t bytes_sparse = 0;
};

// The DGC exchange (specs/compression.md §1.2) on a Communicator:
//   1. all_gather a 4 x i64 header per rank: count, numel, and the first bad index it found in
//      its own pairs (so a bad rank is known everywhere before any payload moves);
//   2. if the pairs would move more bytes than a dense fp32 ring all-reduce (total_count > numel,
//      same decision on every rank), densify and all_reduce instead;
//   3. else all_gatherv the indices and the values, validate every block, and scatter-add rank
//      0's pairs, then rank 1's, ... into `out` (divided by N for kAverage).
// Errors: bad local arguments -> InvalidArgument here and CommError on the other ranks; numel
// differing between ranks -> InvalidArgument on every rank; a count out of [0, numel], an index
// out of range or not increasing -> CorruptData on every rank naming the rank that sent it.
// On CUDA views (the pairs and out on one GPU; docs/collectives.md, "On the GPU") the same steps
// run on that GPU with the same results bit for bit: on a communicator of GPU memory (NCCL) the
// pairs move in GPU memory; on a host communicator (MPI, threads-as-ranks) they are staged
// through host copies. Host views on NCCL, or the pairs and out on different devices, are bad
// arguments.
class SparseAllGather : public Algorithm {
 public:
  struct Options {
    SparseReduction reduction = SparseReduction::kAverage;
    // Off: always take the sparse path (tests, or to measure it).
    bool allow_dense_fallback = true;
  };

  explicit SparseAllGather(Communicator& comm) : SparseAllGather(comm, Options()) {}
  SparseAllGather(Communicator& comm, Options options);
  ~SparseAllGather() override;

  const char* name() const override { return "sparse_all_gather"; }
  const Options& options() const { return options_; }

  // Every rank's pairs combined into `out` (dense f32, on the pairs' device; out.numel is the
  // vector length and must be the same on every rank). Blocks; each verb waits at most
  // comm().timeout(). On CUDA views it returns when the GPU's work is done.
  SparseAllGatherReport run(const SparseVector& mine, TensorView out);

 private:
  struct DeviceBuffers;
  // The sparse path's gather, checks and scatter-add on the GPU of `out`.
  void gather_device(const SparseVector& mine, const std::vector<int64_t>& counts, int64_t total,
                     TensorView out);

  Options options_;
  std::unique_ptr<DeviceBuffers> dev_;
};

}  // namespace terse

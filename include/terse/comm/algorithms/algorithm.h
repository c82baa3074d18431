#pragma once

#include <cstdint>

#include "terse/comm/communicator.h"

namespace terse {

// What one call of a collective Algorithm cost this rank, for the per-step metrics.
struct AlgorithmReport {
  // "sparse" or "dense": the path the call took (the same on every rank).
  const char* path = "";
  // Bytes this rank sent, under the model the algorithm documents (docs/collectives.md).
  uint64_t bytes_sent = 0;
  // Bytes a dense fp32 ring all-reduce of the same tensor sends per rank: 2 (N-1)/N * 4 * numel.
  uint64_t bytes_dense = 0;
};

// A collective Algorithm: built only on the Communicator's verbs, so it runs on every backend.
// Every rank of the communicator must call it with the same arguments' shapes, in the same
// order as its other collectives.
class Algorithm {
 public:
  explicit Algorithm(Communicator& comm) : comm_(comm) {}
  virtual ~Algorithm() = default;
  Algorithm(const Algorithm&) = delete;
  Algorithm& operator=(const Algorithm&) = delete;

  virtual const char* name() const = 0;
  Communicator& comm() const { return comm_; }

 private:
  Communicator& comm_;
};

// Bytes a ring all-reduce of `nbytes` sends per rank: 2 (N-1)/N * nbytes, rounded down; 0 for
// one rank.
uint64_t ring_all_reduce_bytes(uint64_t nbytes, int world_size);
// Bytes a recursive-doubling all-reduce of `nbytes` (the schedule of small all-reduces) sends per
// rank: the whole message in each of ceil(log2 N) rounds; 0 for one rank.
uint64_t recursive_doubling_bytes(uint64_t nbytes, int world_size);

}  // namespace terse

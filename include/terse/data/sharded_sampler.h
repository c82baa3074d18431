#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace terse {

// Splits a dataset across ranks for one epoch. Every rank draws the same seeded permutation
// (Fisher-Yates with PhiloxStream(seed, epoch)), so no indices need to be exchanged; rank r takes
// the r-th contiguous block of num_examples / world_size indices. The remainder is dropped so
// every rank runs the same number of steps (a rank that runs one step more would wait forever
// in its collective).
class ShardedSampler {
 public:
  ShardedSampler(int64_t num_examples, int rank, int world_size, uint64_t seed);

  // This rank's indices for `epoch` (>= 0), in visiting order; disjoint from every other rank's.
  std::vector<int64_t> epoch_indices(int epoch) const;
  // The whole permutation of 0..num_examples-1 for `epoch`, identical on every rank.
  std::vector<int64_t> permutation(int epoch) const;

  // Examples per rank per epoch: num_examples / world_size.
  int64_t shard_size() const { return shard_size_; }
  // Batches per epoch of at most `batch` examples; the last one may be partial.
  int64_t num_batches(int64_t batch) const;
  // [begin, end) positions in epoch_indices() of batch `b` of size `batch`.
  std::pair<int64_t, int64_t> batch_range(int64_t b, int64_t batch) const;

  int64_t num_examples() const { return num_examples_; }
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  uint64_t seed() const { return seed_; }

 private:
  int64_t num_examples_;
  int rank_, world_size_;
  uint64_t seed_;
  int64_t shard_size_;
};

}  // namespace terse

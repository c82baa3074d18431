#include "terse/data/sharded_sampler.h"

#include <algorithm>
#include <cstddef>
#include <numeric>

#include "terse/core/check.h"
#include "terse/core/philox.h"

namespace terse {

ShardedSampler::ShardedSampler(int64_t num_examples, int rank, int world_size, uint64_t seed)
    : num_examples_(num_examples), rank_(rank), world_size_(world_size), seed_(seed) {
  TERSE_CHECK(world_size >= 1, InvalidArgument, "ShardedSampler: world_size must be >= 1, got ",
              world_size);
  TERSE_CHECK(rank >= 0 && rank < world_size, InvalidArgument, "ShardedSampler: rank ", rank,
              " is out of range for world_size ", world_size, " (expected 0..", world_size - 1,
              ")");
  TERSE_CHECK(num_examples >= world_size, InvalidArgument, "ShardedSampler: ", num_examples,
              " examples cannot give each of ", world_size,
              " ranks at least one; use more data or fewer ranks");
  shard_size_ = num_examples / world_size;
}

std::vector<int64_t> ShardedSampler::permutation(int epoch) const {
  TERSE_CHECK(epoch >= 0, InvalidArgument, "ShardedSampler: epoch must be >= 0, got ", epoch);
  std::vector<int64_t> perm(static_cast<size_t>(num_examples_));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  PhiloxStream rng(seed_, static_cast<uint64_t>(epoch));
  // Fisher-Yates from the back: position i swaps with a uniform j in [0, i].
  for (int64_t i = num_examples_ - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1));
    std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
  }
  return perm;
}

std::vector<int64_t> ShardedSampler::epoch_indices(int epoch) const {
  const std::vector<int64_t> perm = permutation(epoch);
  const auto begin = perm.begin() + static_cast<std::ptrdiff_t>(int64_t{rank_} * shard_size_);
  return std::vector<int64_t>(begin, begin + static_cast<std::ptrdiff_t>(shard_size_));
}

int64_t ShardedSampler::num_batches(int64_t batch) const {
  TERSE_CHECK(batch >= 1, InvalidArgument, "batch size must be >= 1, got ", batch);
  return (shard_size_ + batch - 1) / batch;
}

std::pair<int64_t, int64_t> ShardedSampler::batch_range(int64_t b, int64_t batch) const {
  const int64_t n = num_batches(batch);
  TERSE_CHECK(b >= 0 && b < n, InvalidArgument, "batch index ", b, " is out of range (expected 0..",
              n - 1, " for ", shard_size_, " examples in batches of ", batch, ")");
  const int64_t begin = b * batch;
  return {begin, std::min(begin + batch, shard_size_)};
}

}  // namespace terse

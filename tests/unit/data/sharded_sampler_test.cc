#include "terse/data/sharded_sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "terse/core/error.h"

namespace terse {
namespace {

TEST(ShardedSampler, DeterministicAcrossInstances) {
  const ShardedSampler a(1000, 1, 4, 42), b(1000, 1, 4, 42);
  EXPECT_EQ(a.epoch_indices(3), b.epoch_indices(3));
  EXPECT_EQ(a.permutation(3), ShardedSampler(1000, 3, 4, 42).permutation(3));
}

TEST(ShardedSampler, PermutationIsAPermutation) {
  const ShardedSampler s(997, 0, 1, 7);
  std::vector<int64_t> p = s.permutation(0);
  ASSERT_EQ(p.size(), 997u);
  EXPECT_NE(p, [] {
    std::vector<int64_t> id(997);
    for (int64_t i = 0; i < 997; ++i) id[static_cast<size_t>(i)] = i;
    return id;
  }());
  std::sort(p.begin(), p.end());
  for (int64_t i = 0; i < 997; ++i) ASSERT_EQ(p[static_cast<size_t>(i)], i);
}

TEST(ShardedSampler, DisjointEqualShardsDropRemainder) {
  const int64_t n = 1003;
  const int world = 4;
  std::set<int64_t> seen;
  for (int r = 0; r < world; ++r) {
    const ShardedSampler s(n, r, world, 9);
    const std::vector<int64_t> idx = s.epoch_indices(2);
    ASSERT_EQ(idx.size(), 250u);
    EXPECT_EQ(s.shard_size(), 250);
    for (int64_t i : idx) {
      EXPECT_GE(i, 0);
      EXPECT_LT(i, n);
      EXPECT_TRUE(seen.insert(i).second) << "index " << i << " on two ranks";
    }
  }
  EXPECT_EQ(seen.size(), 1000u);  // 3 examples dropped
}

TEST(ShardedSampler, EpochsAndSeedsDiffer) {
  const ShardedSampler s(500, 0, 2, 1);
  EXPECT_NE(s.epoch_indices(0), s.epoch_indices(1));
  EXPECT_NE(s.epoch_indices(0), ShardedSampler(500, 0, 2, 2).epoch_indices(0));
  // Shuffling moves examples between ranks from one epoch to the next.
  const std::vector<int64_t> e0 = s.epoch_indices(0), e1 = s.epoch_indices(1);
  const std::set<int64_t> a(e0.begin(), e0.end());
  int64_t common = 0;
  for (int64_t i : e1) common += a.count(i);
  EXPECT_GT(common, 50);
  EXPECT_LT(common, 200);
}

TEST(ShardedSampler, FisherYatesIsUnbiasedOnSmallN) {
  // All 6 permutations of 3 elements over 6000 epochs: each should appear ~1000 times.
  std::map<std::vector<int64_t>, int> counts;
  const ShardedSampler s(3, 0, 1, 123);
  for (int e = 0; e < 6000; ++e) ++counts[s.permutation(e)];
  ASSERT_EQ(counts.size(), 6u);
  for (const auto& [p, c] : counts) {
    EXPECT_GT(c, 880);  // ~4.1 sigma of binomial(6000, 1/6)
    EXPECT_LT(c, 1120);
  }
}

TEST(ShardedSampler, Batches) {
  const ShardedSampler s(60000, 3, 4, 0);
  EXPECT_EQ(s.shard_size(), 15000);
  EXPECT_EQ(s.num_batches(64), 235);  // 234 full + one of 24
  EXPECT_EQ(s.batch_range(0, 64), (std::pair<int64_t, int64_t>{0, 64}));
  EXPECT_EQ(s.batch_range(234, 64), (std::pair<int64_t, int64_t>{14976, 15000}));
  EXPECT_EQ(s.num_batches(15000), 1);
  EXPECT_THROW(s.batch_range(235, 64), InvalidArgument);
  EXPECT_THROW(s.num_batches(0), InvalidArgument);
}

TEST(ShardedSampler, RejectsBadArguments) {
  EXPECT_THROW(ShardedSampler(10, 2, 2, 0), InvalidArgument);
  EXPECT_THROW(ShardedSampler(10, -1, 2, 0), InvalidArgument);
  EXPECT_THROW(ShardedSampler(10, 0, 0, 0), InvalidArgument);
  EXPECT_THROW(ShardedSampler(3, 0, 4, 0), InvalidArgument);
  EXPECT_THROW(ShardedSampler(10, 0, 1, 0).epoch_indices(-1), InvalidArgument);
}

}  // namespace
}  // namespace terse

#include "terse/comm/algorithms/bucket_layout.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

#include "terse/comm/local_communicator.h"

namespace terse {
namespace {

using ::testing::HasSubstr;

TEST(BucketLayout, SameLayoutPasses) {
  for (const int world : {1, 2, 3, 4, 8}) {
    run_local_ranks(world, [](Communicator& comm) {
      check_bucket_layout(comm, {6553600, 1000, 17});
      check_bucket_layout(comm, {});
    });
  }
}

TEST(BucketLayout, HashDependsOnSizesAndOrder) {
  EXPECT_EQ(bucket_layout_hash({1, 2}), bucket_layout_hash({1, 2}));
  EXPECT_NE(bucket_layout_hash({1, 2}), bucket_layout_hash({2, 1}));
  EXPECT_NE(bucket_layout_hash({1, 2}), bucket_layout_hash({1, 2, 0}));
  EXPECT_NE(bucket_layout_hash({}), bucket_layout_hash({0}));
}

// Every rank's message when the ranks pass `layout(rank)`.
std::vector<std::string> messages(int world, std::vector<int64_t> (*layout)(int)) {
  std::vector<std::string> what(static_cast<size_t>(world));
  std::atomic<int> thrown{0};
  run_local_ranks(world, [&](Communicator& comm) {
    try {
      check_bucket_layout(comm, layout(comm.rank()));
    } catch (const InvalidArgument& e) {
      what[static_cast<size_t>(comm.rank())] = e.what();
      ++thrown;
    }
  });
  EXPECT_EQ(thrown.load(), world) << "every rank must throw";
  return what;
}

TEST(BucketLayout, DifferentSizeNamesFirstBucketAndRanks) {
  const auto what = messages(4, [](int rank) -> std::vector<int64_t> {
    if (rank == 3) return {100, 200, 301, 400};
    return {100, 200, 300, 400};
  });
  EXPECT_THAT(what[0], HasSubstr("bucket 2: 300 elements on rank 0, 301 elements on rank 3"));
  EXPECT_THAT(what[1], HasSubstr("bucket 2: 300 elements on rank 1, 301 elements on rank 3"));
  EXPECT_THAT(what[3], HasSubstr("bucket 2: 301 elements on rank 3, 300 elements on rank 0"));
}

TEST(BucketLayout, DifferentBucketCount) {
  const auto what = messages(2, [](int rank) -> std::vector<int64_t> {
    if (rank == 1) return {5, 6, 7};
    return {5, 6};
  });
  EXPECT_THAT(what[0], HasSubstr("bucket 2: none on rank 0, 7 elements on rank 1 "
                                 "(rank 0 has 2 buckets, rank 1 has 3)"));
  EXPECT_THAT(what[1], HasSubstr("bucket 2: 7 elements on rank 1, none on rank 0"));
}

}  // namespace
}  // namespace terse

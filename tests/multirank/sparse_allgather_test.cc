// SparseAllGather and check_bucket_layout over the MPI backend, on every rank: bit-exact against
// a single-process reference every rank computes from all ranks' deterministic inputs. Run under
// mpiexec (CTest: multirank.sparse_allgather).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "sparse_test_util.h"
#include "terse/comm/algorithms/bucket_layout.h"
#include "terse/comm/algorithms/sparse_all_gather.h"
#include "terse/comm/communicator.h"

namespace terse {
namespace {

using testing::first_bit_difference;
using ::testing::HasSubstr;
using testing::make_pairs;
using testing::Pairs;
using testing::reference;

Communicator* g_comm = nullptr;

std::vector<Pairs> all_pairs(int64_t numel, double density, uint64_t salt, bool exact) {
  std::vector<Pairs> all;
  for (int r = 0; r < g_comm->size(); ++r)
    all.push_back(make_pairs(r, numel, density, salt, exact));
  return all;
}

TEST(MpiSparseAllGather, SparsePathBitExactInRankOrder) {
  // The pairs arrive unchanged and are added in rank order, so even values spanning 21 binades
  // match the reference bit for bit.
  // Density 0.2 puts three or more ranks on many indices, where any other order shows.
  for (const double density : {0.01, 0.2}) {
    for (const int64_t numel : {int64_t{1}, int64_t{4097}, int64_t{1} << 20}) {
      for (const bool average : {false, true}) {
        const auto all = all_pairs(numel, density, 21, /*exact=*/false);
        const std::vector<float> want = reference(all, numel, average);
        SparseAllGather::Options opt;
        opt.reduction = average ? SparseReduction::kAverage : SparseReduction::kSum;
        opt.allow_dense_fallback = false;
        std::vector<float> out(static_cast<size_t>(numel), 7.0f);
        const auto rep = SparseAllGather(*g_comm, opt)
                             .run(all[static_cast<size_t>(g_comm->rank())].view(),
                                  TensorView::of(out.data(), numel));
        EXPECT_EQ(first_bit_difference(out, want), -1)
            << "numel " << numel << " density " << density << " rank " << g_comm->rank();
        int64_t total = 0;
        for (const auto& p : all) total += static_cast<int64_t>(p.indices.size());
        EXPECT_EQ(rep.total_count, total);
        EXPECT_STREQ(rep.path, "sparse");
      }
    }
  }
}

TEST(MpiSparseAllGather, EmptyAndSameIndex) {
  std::vector<float> out(33, 5.0f);
  SparseAllGather algo(*g_comm);
  auto rep = algo.run(SparseVector{}, TensorView::of(out.data(), 33));
  EXPECT_EQ(rep.total_count, 0);
  for (const float x : out) EXPECT_EQ(x, 0.0f);
  // Odd ranks send nothing; even ranks send index 7.
  const int32_t idx[] = {7};
  const float val[] = {static_cast<float>(g_comm->rank() + 1)};
  SparseAllGather::Options sum;
  sum.reduction = SparseReduction::kSum;
  rep =
      SparseAllGather(*g_comm, sum)
          .run(SparseVector{idx, val, g_comm->rank() % 2 ? 0 : 1}, TensorView::of(out.data(), 33));
  float want = 0.0f;
  for (int r = 0; r < g_comm->size(); r += 2) want += static_cast<float>(r + 1);
  for (int i = 0; i < 33; ++i) EXPECT_EQ(out[static_cast<size_t>(i)], i == 7 ? want : 0.0f);
  // Every rank sends index 7.
  rep =
      SparseAllGather(*g_comm, sum).run(SparseVector{idx, val, 1}, TensorView::of(out.data(), 33));
  const int n = g_comm->size();
  EXPECT_EQ(out[7], static_cast<float>(n * (n + 1) / 2));
  EXPECT_EQ(rep.max_count, 1);
}

TEST(MpiSparseAllGather, DenseFallbackWhenDense) {
  // Multiples of 1/4: exact in any order, since MPI picks its own all-reduce order.
  const int64_t numel = 100003;
  const auto all = all_pairs(numel, 0.5, 22, /*exact=*/true);
  const std::vector<float> want = reference(all, numel, true);
  std::vector<float> out(static_cast<size_t>(numel));
  const auto rep = SparseAllGather(*g_comm).run(all[static_cast<size_t>(g_comm->rank())].view(),
                                                TensorView::of(out.data(), numel));
  EXPECT_TRUE(rep.dense_fallback);
  EXPECT_STREQ(rep.path, "dense");
  EXPECT_EQ(first_bit_difference(out, want), -1) << "rank " << g_comm->rank();
  const uint64_t n = static_cast<uint64_t>(g_comm->size());
  EXPECT_EQ(rep.bytes_dense, 2 * (n - 1) * 4 * static_cast<uint64_t>(numel) / n);
  EXPECT_EQ(rep.bytes_sent, (n - 1) * 32 + rep.bytes_dense);
}

TEST(MpiSparseAllGather, BadIndexFromOneRankFailsEveryRank) {
  const int bad = g_comm->size() - 1;
  std::vector<int32_t> idx = {1, 4, 9};
  if (g_comm->rank() == bad) idx = {1, 9, 4};
  const std::vector<float> val(3, 1.0f);
  std::vector<float> out(50);
  try {
    SparseAllGather(*g_comm).run(SparseVector{idx.data(), val.data(), 3},
                                 TensorView::of(out.data(), 50));
    ADD_FAILURE() << "rank " << g_comm->rank() << " did not throw";
  } catch (const CorruptData& e) {
    EXPECT_THAT(e.what(), HasSubstr("rank " + std::to_string(bad) +
                                    " sent bad pairs: index 4 at position 2 of its 3"));
  }
  // The communicator is still usable: nobody is left inside a collective.
  g_comm->barrier();
}

TEST(MpiBucketLayout, MatchAndMismatch) {
  check_bucket_layout(*g_comm, {6553600, 4096, 10});
  if (g_comm->size() == 1) GTEST_SKIP() << "a mismatch needs two ranks";
  const int bad = g_comm->size() > 2 ? 2 : 1;
  const std::string me = std::to_string(g_comm->rank()), other = std::to_string(bad);
  std::vector<int64_t> layout = {6553600, 4096, 10};
  if (g_comm->rank() == bad) layout[1] = 4095;
  try {
    check_bucket_layout(*g_comm, layout);
    ADD_FAILURE() << "rank " << me << " did not throw";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(),
                HasSubstr(g_comm->rank() == bad ? "bucket 1: 4095 elements on rank " + me +
                                                      ", 4096 elements on rank 0"
                                                : "bucket 1: 4096 elements on rank " + me +
                                                      ", 4095 elements on rank " + other));
  }
  g_comm->barrier();
}

}  // namespace
}  // namespace terse

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto comm = terse::make_communicator("mpi");
  terse::g_comm = comm.get();
  if (comm->rank() != 0) GTEST_FLAG_SET(brief, true);
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  // The job fails when any rank failed, and every rank says so.
  comm->all_reduce(terse::TensorView::of(&failed, 1), terse::ReduceOp::kMax);
  if (comm->rank() == 0) {
    std::printf("multirank sparse_allgather: %d ranks, %s\n", comm->size(),
                failed ? "FAILED on some rank" : "all passed");
  }
  comm.reset();
  return failed;
}

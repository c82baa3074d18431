// SparseAllReduce (Ok-Topk) over the MPI backend, on every rank: bit-exact against a
// single-process reference every rank computes from all ranks' deterministic inputs, the byte
// bound, identical rebalanced boundaries, and a bad pair failing every rank; the same for
// Quota::kFixed, plus its validation's mismatch messages and error priority. Run under mpiexec
// (CTest: multirank.sparse_all_reduce).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "sparse_all_reduce_reference.h"
#include "sparse_test_util.h"
#include "terse/comm/algorithms/sparse_all_reduce.h"
#include "terse/comm/communicator.h"

namespace terse {
namespace {

using testing::first_bit_difference;
using testing::fixed_reference;
using testing::FixedReference;
using ::testing::HasSubstr;
using testing::make_pairs;
using testing::ok_topk_reference;
using testing::OkTopkReference;
using testing::Pairs;
using testing::reference;
using testing::union_size;

Communicator* g_comm = nullptr;

std::vector<Pairs> all_pairs(int64_t numel, double density, uint64_t salt) {
  std::vector<Pairs> all;
  for (int r = 0; r < g_comm->size(); ++r) all.push_back(make_pairs(r, numel, density, salt));
  return all;
}

// Every rank's boundaries, gathered: identical everywhere or the test fails.
void expect_same_boundaries(const std::vector<int64_t>& b) {
  const int n = g_comm->size();
  std::vector<int64_t> mine = b, all(static_cast<size_t>(n) * b.size());
  g_comm->all_gather(TensorView::of(mine.data(), static_cast<int64_t>(mine.size())),
                     TensorView::of(all.data(), static_cast<int64_t>(all.size())));
  for (int r = 0; r < n; ++r) {
    const std::vector<int64_t> theirs(all.begin() + static_cast<int64_t>(r * b.size()),
                                      all.begin() + static_cast<int64_t>((r + 1) * b.size()));
    EXPECT_EQ(theirs, b) << "rank " << r << " vs rank " << g_comm->rank();
  }
}

TEST(MpiSparseAllReduce, BudgetCoveringTheUnionIsTheExactSum) {
  for (const int64_t numel : {int64_t{1}, int64_t{4097}, int64_t{1} << 18}) {
    for (const double density : {0.01, 0.2}) {
      const auto all = all_pairs(numel, density, 31);
      const int64_t u = union_size(all, numel);
      SparseAllReduce algo(*g_comm);
      std::vector<float> out(static_cast<size_t>(numel), 7.0f);
      const auto rep = algo.run(all[static_cast<size_t>(g_comm->rank())].view(), u,
                                TensorView::of(out.data(), numel));
      EXPECT_EQ(first_bit_difference(out, reference(all, numel, true)), -1)
          << "numel " << numel << " density " << density << " rank " << g_comm->rank();
      EXPECT_EQ(rep.selected, u);
      EXPECT_EQ(rep.dropped, 0);
    }
  }
}

TEST(MpiSparseAllReduce, TightBudgetMatchesTheReferenceOverSteps) {
  const int64_t numel = 1 << 16, k = 700;
  SparseAllReduce algo(*g_comm);
  for (uint64_t step = 0; step < 4; ++step) {
    // ~655 pairs per rank (<= k); the union is ~N times larger.
    const auto all = all_pairs(numel, 0.01, 40 + step);
    const Pairs& mine = all[static_cast<size_t>(g_comm->rank())];
    ASSERT_LE(static_cast<int64_t>(mine.indices.size()), k);
    const std::vector<int64_t> before =
        algo.boundaries().empty() ? SparseAllReduce::equal_boundaries(numel, g_comm->size())
                                  : algo.boundaries();
    std::vector<float> out(static_cast<size_t>(numel), 7.0f);
    const auto rep = algo.run(mine.view(), k, TensorView::of(out.data(), numel));
    const OkTopkReference ref = ok_topk_reference(all, numel, k, before, true);
    EXPECT_EQ(first_bit_difference(out, ref.out), -1) << "step " << step;
    EXPECT_EQ(rep.selected, static_cast<int64_t>(ref.selected.size()));
    for (size_t i = 0; i < rep.kept.size(); ++i) {
      const bool in = std::binary_search(ref.selected.begin(), ref.selected.end(), mine.indices[i]);
      ASSERT_EQ(rep.kept[i], in ? 1 : 0) << "step " << step << " pair " << i;
    }
    EXPECT_LE(rep.bytes_sent, 2u * k * 8u + rep.bytes_control);
    expect_same_boundaries(algo.boundaries());
  }
}

SparseAllReduce::Options fixed_options() {
  SparseAllReduce::Options o;
  o.quota = SparseAllReduce::Quota::kFixed;
  return o;
}

// kFixed over steps: bit for bit the reference, kept flags, bytes <= 2 k 8 including control
// (k >= fixed_min_budget(N)) and equal to the fixed blocks, identical boundaries.
TEST(MpiSparseAllReduce, FixedQuotaMatchesTheReferenceOverSteps) {
  const int64_t numel = 1 << 16;
  const int n = g_comm->size();
  SparseAllReduce algo(*g_comm, fixed_options());
  for (uint64_t step = 0; step < 4; ++step) {
    // ~655 pairs per rank; budgets below, near and above one rank's count, one not divisible.
    const int64_t k = step == 3 ? 2 * n + 1 : 700 - 101 * static_cast<int64_t>(step);
    const auto all = all_pairs(numel, 0.01, 50 + step);
    const Pairs& mine = all[static_cast<size_t>(g_comm->rank())];
    const std::vector<int64_t> before =
        algo.boundaries().empty() ? SparseAllReduce::equal_boundaries(numel, n) : algo.boundaries();
    std::vector<float> out(static_cast<size_t>(numel), 7.0f);
    const auto rep = algo.run(mine.view(), k, TensorView::of(out.data(), numel));
    const FixedReference ref = fixed_reference(all, numel, k, before, true);
    EXPECT_EQ(first_bit_difference(out, ref.out), -1) << "step " << step;
    EXPECT_EQ(rep.selected, static_cast<int64_t>(ref.selected.size())) << "step " << step;
    EXPECT_EQ(rep.kept, ref.kept[static_cast<size_t>(g_comm->rank())]) << "step " << step;
    EXPECT_LE(rep.bytes_sent, SparseAllReduce::fixed_bytes_per_rank(k, n));
    if (k >= SparseAllReduce::fixed_min_budget(n)) {
      EXPECT_LE(rep.bytes_sent, 2u * 8u * static_cast<uint64_t>(k)) << "step " << step;
    }
    expect_same_boundaries(algo.boundaries());
  }
}

// In both quota modes a bad index from one rank fails every rank, naming it.
TEST(MpiSparseAllReduce, BadIndexFromOneRankFailsEveryRank) {
  const int bad = g_comm->size() - 1;
  std::vector<int32_t> idx = {1, 4, 9};
  if (g_comm->rank() == bad) idx = {1, 9, 4};
  const std::vector<float> val = {1.0f, 2.0f, 3.0f};
  const std::pair<SparseAllReduce::Options, const char*> modes[] = {
      {SparseAllReduce::Options(), " sent bad pairs: index 4 at position 2 of its 3"},
      {fixed_options(), " sent bad pairs: index 4 at position 2"}};
  for (const auto& [options, want] : modes) {
    std::vector<float> out(100);
    try {
      SparseAllReduce(*g_comm, options)
          .run(SparseVector{idx.data(), val.data(), 3}, 10, TensorView::of(out.data(), 100));
      ADD_FAILURE() << "rank " << g_comm->rank() << " did not throw";
    } catch (const CorruptData& e) {
      EXPECT_THAT(e.what(), HasSubstr("rank " + std::to_string(bad) + want));
    }
    g_comm->barrier();
  }
}

// One kFixed call on this rank; returns the kind of error it threw ("" if none) and its text.
struct Thrown {
  std::string type, what;
};
Thrown fixed_call(std::vector<int32_t> idx, std::vector<float> val, int64_t numel, int64_t budget,
                  const std::vector<int64_t>& boundaries = {}) {
  Thrown t;
  std::vector<float> out(static_cast<size_t>(numel));
  try {
    SparseAllReduce algo(*g_comm, fixed_options());
    if (!boundaries.empty()) algo.set_boundaries(boundaries);
    algo.run(SparseVector{idx.data(), val.data(), static_cast<int64_t>(idx.size())}, budget,
             TensorView::of(out.data(), numel));
  } catch (const CorruptData& e) {
    t = {"CorruptData", e.what()};
  } catch (const InvalidArgument& e) {
    t = {"InvalidArgument", e.what()};
  } catch (const CommError& e) {
    t = {"CommError", e.what()};
  } catch (const NumericalError& e) {
    t = {"NumericalError", e.what()};
  }
  g_comm->barrier();
  return t;
}

// kFixed validates numel, budget and boundaries through one hash; a mismatch runs a second
// all_reduce so every rank still says which differs and the values seen.
TEST(MpiSparseAllReduce, FixedQuotaMismatchesNameWhatDiffers) {
  const int n = g_comm->size(), me = g_comm->rank(), last = n - 1;
  if (n < 2) GTEST_SKIP() << "needs two ranks";
  const std::vector<int32_t> idx = {1, 4, 9};
  const std::vector<float> val = {1.0f, 2.0f, 3.0f};
  Thrown t = fixed_call(idx, val, me == last ? 101 : 100, 10);
  EXPECT_EQ(t.type, "InvalidArgument") << t.what;
  EXPECT_THAT(t.what, HasSubstr("the ranks passed vectors of 100 to 101 elements (this rank: " +
                                std::to_string(me == last ? 101 : 100) + ")"));
  t = fixed_call(idx, val, 100, me == 0 ? 8 : 10);
  EXPECT_EQ(t.type, "InvalidArgument") << t.what;
  EXPECT_THAT(t.what, HasSubstr("the ranks passed budgets from 8 to 10"));
  std::vector<int64_t> bounds = SparseAllReduce::equal_boundaries(100, n);
  if (me == last) bounds[1] += 1;
  t = fixed_call(idx, val, 100, 10, bounds);
  EXPECT_EQ(t.type, "InvalidArgument") << t.what;
  EXPECT_THAT(t.what, HasSubstr("the ranks hold different boundaries (hashes from "));
}

// One error word: bad arguments outrank a bad pair, which outranks a non-finite value, on
// whichever ranks they are; every rank throws the same one.
TEST(MpiSparseAllReduce, FixedQuotaMostImportantErrorWinsOnEveryRank) {
  const int n = g_comm->size(), me = g_comm->rank(), last = n - 1;
  if (n < 2) GTEST_SKIP() << "needs two ranks";
  std::vector<int32_t> idx = {1, 4, 9};
  std::vector<float> val = {1.0f, 2.0f, 3.0f};
  if (me == 0) idx = {1, 9, 4};            // bad pair on the lowest rank
  if (me == last) val[1] = std::nanf("");  // non-finite on the highest
  Thrown t = fixed_call(idx, val, 100, 10);
  EXPECT_EQ(t.type, "CorruptData") << t.what;
  EXPECT_THAT(t.what, HasSubstr("rank 0 sent bad pairs: index 4 at position 2"));
  // Bad arguments on rank 0 (count 3 > numel 2): it throws InvalidArgument, every other rank
  // CommError naming it, though the highest rank holds a bad pair.
  idx = {1, 4, 9};
  val = {1.0f, 2.0f, 3.0f};
  if (me == last) idx = {1, 9, 4};
  t = fixed_call(idx, val, me == 0 ? 2 : 100, 10);
  if (me == 0) {
    EXPECT_EQ(t.type, "InvalidArgument") << t.what;
    EXPECT_THAT(t.what, HasSubstr("count is 3 for a vector of 2 elements"));
  } else {
    EXPECT_EQ(t.type, "CommError") << t.what;
    EXPECT_THAT(t.what, HasSubstr("rank 0 passed invalid arguments"));
  }
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
    std::printf("multirank sparse_all_reduce: %d ranks, %s\n", comm->size(),
                failed ? "FAILED on some rank" : "all passed");
  }
  comm.reset();
  return failed;
}

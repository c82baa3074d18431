// SparseAllGather on threads-as-ranks: bit-exact against a single-process reference that sums in
// rank order, both paths, the byte report, and every error a bad peer or a bad call gives.

#include "terse/comm/algorithms/sparse_all_gather.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "sparse_test_ranks.h"
#include "sparse_test_util.h"
#include "terse/comm/local_communicator.h"

namespace terse {
namespace {

using testing::CorruptingCommunicator;
using testing::first_bit_difference;
using ::testing::HasSubstr;
using testing::make_pairs;
using testing::Outcome;
using testing::Pairs;
using testing::reference;
using testing::run_each;
using testing::run_on;

const int kWorlds[] = {1, 2, 3, 4, 8};

struct Case {
  int world;
  int64_t numel;
  double density;
  bool average;
};

// Runs the algorithm on every rank with make_pairs inputs; checks every rank's output against
// the reference bit for bit and returns rank 0's report.
SparseAllGatherReport run_and_compare(const Case& c, SparseAllGather::Options opt, bool exact,
                                      uint64_t salt) {
  std::vector<Pairs> all;
  for (int r = 0; r < c.world; ++r) all.push_back(make_pairs(r, c.numel, c.density, salt, exact));
  const std::vector<float> want = reference(all, c.numel, c.average);
  opt.reduction = c.average ? SparseReduction::kAverage : SparseReduction::kSum;
  std::vector<SparseAllGatherReport> reports(static_cast<size_t>(c.world));
  run_local_ranks(c.world, [&](Communicator& comm) {
    std::vector<float> out(static_cast<size_t>(c.numel), 123.0f);
    SparseAllGather algo(comm, opt);
    reports[static_cast<size_t>(comm.rank())] =
        algo.run(all[static_cast<size_t>(comm.rank())].view(), TensorView::of(out.data(), c.numel));
    EXPECT_EQ(first_bit_difference(out, want), -1)
        << "rank " << comm.rank() << " world " << c.world << " numel " << c.numel << " density "
        << c.density;
  });
  for (const auto& rep : reports) {
    EXPECT_STREQ(rep.path, reports[0].path) << "every rank must take the same path";
  }
  return reports[0];
}

TEST(SparseAllGather, SumAndAverageBitExactInRankOrder) {
  for (const int world : kWorlds) {
    for (const bool average : {false, true}) {
      for (const double density : {0.001, 0.03, 0.1}) {
        const Case c{world, 10007, density, average};
        SCOPED_TRACE(::testing::Message() << "world " << world << " density " << density);
        SparseAllGather::Options opt;
        opt.allow_dense_fallback = false;
        const SparseAllGatherReport rep = run_and_compare(c, opt, /*exact=*/false, 3);
        EXPECT_STREQ(rep.path, "sparse");
        EXPECT_FALSE(rep.dense_fallback);
      }
    }
  }
}

TEST(SparseAllGather, ReportCountsAndBytes) {
  const int world = 4;
  const int64_t numel = 5000;
  std::vector<Pairs> all;
  for (int r = 0; r < world; ++r) all.push_back(make_pairs(r, numel, 0.01 * (r + 1), 9));
  int64_t total = 0, max_count = 0;
  for (const auto& p : all) {
    total += static_cast<int64_t>(p.indices.size());
    max_count = std::max(max_count, static_cast<int64_t>(p.indices.size()));
  }
  std::vector<SparseAllGatherReport> reports(world);
  run_local_ranks(world, [&](Communicator& comm) {
    std::vector<float> out(numel);
    SparseAllGather algo(comm);
    EXPECT_STREQ(algo.name(), "sparse_all_gather");
    reports[static_cast<size_t>(comm.rank())] =
        algo.run(all[static_cast<size_t>(comm.rank())].view(), TensorView::of(out.data(), numel));
  });
  for (int r = 0; r < world; ++r) {
    const auto& rep = reports[static_cast<size_t>(r)];
    const uint64_t mine = all[static_cast<size_t>(r)].indices.size();
    EXPECT_STREQ(rep.path, "sparse");
    EXPECT_EQ(rep.total_count, total);
    EXPECT_EQ(rep.max_count, max_count);
    // Header 3 x 32 B, then this rank's pairs (8 B each) to each of the 3 others.
    EXPECT_EQ(rep.bytes_sent, 3u * 32u + 3u * 8u * mine) << "rank " << r;
    EXPECT_EQ(rep.bytes_sparse, 3u * 8u * static_cast<uint64_t>(total) / 4u);
    EXPECT_EQ(rep.bytes_dense, 2u * 3u * 4u * 5000u / 4u);  // 30000
  }
  // Summed over ranks, bytes sent is N x the ring per-rank average (up to rounding).
  uint64_t pair_bytes = 0;
  for (const auto& rep : reports) pair_bytes += rep.bytes_sent - 96u;
  EXPECT_EQ(pair_bytes, 3u * 8u * static_cast<uint64_t>(total));
}

TEST(SparseAllGather, EmptyContributions) {
  for (const int world : kWorlds) {
    // Nobody sends anything: zeros everywhere, sparse path, only the header was sent.
    const Case none{world, 257, 0.0, true};
    const auto rep = run_and_compare(none, SparseAllGather::Options(), false, 4);
    EXPECT_STREQ(rep.path, "sparse");
    EXPECT_EQ(rep.total_count, 0);
    EXPECT_EQ(rep.bytes_sent, static_cast<uint64_t>(world - 1) * 32u);
    // Even ranks send nothing, odd ranks do.
    std::vector<Pairs> all;
    for (int r = 0; r < world; ++r) all.push_back(make_pairs(r, 257, r % 2 ? 0.2 : 0.0, 5));
    const std::vector<float> want = reference(all, 257, false);
    run_local_ranks(world, [&](Communicator& comm) {
      std::vector<float> out(257, -1.0f);
      SparseAllGather::Options opt;
      opt.reduction = SparseReduction::kSum;
      SparseAllGather(comm, opt).run(all[static_cast<size_t>(comm.rank())].view(),
                                     TensorView::of(out.data(), 257));
      EXPECT_EQ(first_bit_difference(out, want), -1) << "world " << world;
    });
  }
  // A vector of zero elements.
  run_local_ranks(3, [](Communicator& comm) {
    SparseAllGather algo(comm);
    const auto rep = algo.run(SparseVector{}, TensorView(nullptr, 0, DType::kF32));
    EXPECT_EQ(rep.total_count, 0);
    EXPECT_EQ(rep.bytes_dense, 0u);
  });
}

TEST(SparseAllGather, AllRanksSameIndex) {
  for (const int world : kWorlds) {
    run_local_ranks(world, [world](Communicator& comm) {
      const int32_t idx[] = {7};
      const float val[] = {0.5f + static_cast<float>(comm.rank())};
      std::vector<float> out(10, 9.0f);
      SparseAllGather::Options opt;
      opt.reduction = SparseReduction::kSum;
      const auto rep =
          SparseAllGather(comm, opt).run(SparseVector{idx, val, 1}, TensorView::of(out.data(), 10));
      // 0.5 + 1.5 + ... = N/2 + N(N-1)/2 = N^2 / 2.
      const float want = static_cast<float>(world * world) / 2.0f;
      for (int i = 0; i < 10; ++i) EXPECT_EQ(out[static_cast<size_t>(i)], i == 7 ? want : 0.0f);
      EXPECT_EQ(rep.total_count, world);
      EXPECT_EQ(rep.max_count, 1);
    });
  }
}

TEST(SparseAllGather, DenseFallbackWhenDense) {
  for (const int world : {2, 3, 4, 8}) {
    SCOPED_TRACE(::testing::Message() << "world " << world);
    // Per-rank density 0.6 > 1/N: the pairs (8 B each) outweigh a dense all-reduce.
    const Case c{world, 4099, 0.6, true};
    const auto rep = run_and_compare(c, SparseAllGather::Options(), /*exact=*/true, 6);
    EXPECT_TRUE(rep.dense_fallback);
    EXPECT_STREQ(rep.path, "dense");
    EXPECT_GT(rep.total_count, c.numel);
    EXPECT_GT(rep.bytes_sparse, rep.bytes_dense);
    EXPECT_EQ(rep.bytes_sent, static_cast<uint64_t>(world - 1) * 32u + rep.bytes_dense);
    // The same data with the fallback off goes sparse and gives the same bits.
    SparseAllGather::Options off;
    off.allow_dense_fallback = false;
    const auto rep_off = run_and_compare(c, off, /*exact=*/true, 6);
    EXPECT_STREQ(rep_off.path, "sparse");
    EXPECT_GT(rep_off.bytes_sent, rep.bytes_sent);
  }
  // Just under the break-even point: total_count == numel stays sparse; one more pair goes dense.
  for (const int64_t extra : {0, 1}) {
    run_local_ranks(2, [extra](Communicator& comm) {
      const int64_t numel = 100;
      const int64_t cnt = comm.rank() == 0 ? 50 + extra : 50;
      std::vector<int32_t> idx(static_cast<size_t>(cnt));
      for (int64_t i = 0; i < cnt; ++i) idx[static_cast<size_t>(i)] = static_cast<int32_t>(i);
      std::vector<float> val(static_cast<size_t>(cnt), 1.0f);
      std::vector<float> out(numel);
      const auto rep = SparseAllGather(comm).run(SparseVector{idx.data(), val.data(), cnt},
                                                 TensorView::of(out.data(), numel));
      EXPECT_EQ(rep.dense_fallback, extra == 1) << "total " << rep.total_count;
      EXPECT_EQ(out[0], 1.0f);                       // (1 + 1) / 2
      EXPECT_EQ(out[50], extra == 1 ? 0.5f : 0.0f);  // rank 0's extra pair
      EXPECT_EQ(out[99], 0.0f);
    });
  }
}

// Rank `bad_rank` passes pairs with one bad index at `pos`; every rank must throw CorruptData
// naming it.
void expect_bad_pairs_named(int world, int bad_rank, const std::vector<int32_t>& bad_indices,
                            const std::string& detail_text) {
  const auto outcomes = run_each(world, std::chrono::seconds(20), [&](Communicator& comm) {
    std::vector<int32_t> idx = {1, 4, 9};
    if (comm.rank() == bad_rank) idx = bad_indices;
    std::vector<float> val(idx.size(), 1.0f);
    std::vector<float> out(50);
    SparseAllGather(comm).run(
        SparseVector{idx.data(), val.data(), static_cast<int64_t>(idx.size())},
        TensorView::of(out.data(), 50));
  });
  for (int r = 0; r < world; ++r) {
    const Outcome& o = outcomes[static_cast<size_t>(r)];
    EXPECT_EQ(o.type, "CorruptData") << "rank " << r << ": " << o.what;
    EXPECT_THAT(o.what, HasSubstr("rank " + std::to_string(bad_rank) + " sent bad pairs"));
    EXPECT_THAT(o.what, HasSubstr(detail_text));
  }
}

TEST(SparseAllGather, BadIndexFromOneRankFailsEveryRank) {
  for (const int world : {2, 3, 4, 8}) {
    const int bad = world - 1;
    expect_bad_pairs_named(world, bad, {1, 4, 50}, "index 50 at position 2 of its 3");
    expect_bad_pairs_named(world, bad, {-3, 4}, "index -3 at position 0 of its 2");
    expect_bad_pairs_named(world, bad, {4, 1}, "index 1 at position 1 of its 2");
    expect_bad_pairs_named(world, bad, {1, 4, 4}, "index 4 at position 2 of its 3");
  }
}

std::vector<Outcome> run_corrupted(int world, int victim, CorruptingCommunicator::Mode mode) {
  auto locals = make_local_communicators(world);
  std::vector<std::unique_ptr<Communicator>> comms;
  for (auto& l : locals) {
    l->set_timeout(std::chrono::seconds(20));
    comms.push_back(std::make_unique<CorruptingCommunicator>(std::move(l), victim, mode));
  }
  return run_on(comms, [](Communicator& comm) {
    const std::vector<int32_t> idx = {2, 3, 5};
    const std::vector<float> val = {1.0f, 2.0f, 3.0f};
    std::vector<float> out(100);
    SparseAllGather(comm).run(SparseVector{idx.data(), val.data(), 3},
                              TensorView::of(out.data(), 100));
  });
}

TEST(SparseAllGather, ReceiversRejectIndexCorruptedOnTheWire) {
  for (const int world : {2, 3, 4, 8}) {
    const int victim = world / 2;
    const auto outcomes = run_corrupted(world, victim, CorruptingCommunicator::Mode::kIndex);
    for (int r = 0; r < world; ++r) {
      const Outcome& o = outcomes[static_cast<size_t>(r)];
      EXPECT_EQ(o.type, "CorruptData") << "rank " << r << ": " << o.what;
      EXPECT_THAT(o.what, HasSubstr("pairs received from rank " + std::to_string(victim) +
                                    ": at position 0 of 3, index 2147483647 is outside [0, 100)"));
    }
  }
}

TEST(SparseAllGather, ReceiversRejectCountCorruptedOnTheWire) {
  const auto outcomes = run_corrupted(3, 1, CorruptingCommunicator::Mode::kCount);
  for (const Outcome& o : outcomes) {
    EXPECT_EQ(o.type, "CorruptData") << o.what;
    EXPECT_THAT(o.what, HasSubstr("rank 1 announced 1000000 pairs for a vector of 100 elements"));
  }
}

TEST(SparseAllGather, BadArgumentsOnOneRankFailFastEverywhere) {
  const auto start = std::chrono::steady_clock::now();
  const auto outcomes = run_each(3, std::chrono::seconds(30), [](Communicator& comm) {
    const int32_t idx[] = {0, 1};
    const float val[] = {1.0f, 1.0f};
    std::vector<float> out(8);
    // Rank 1 claims more pairs than the vector has elements.
    const int64_t count = comm.rank() == 1 ? 9 : 2;
    SparseAllGather(comm).run(SparseVector{idx, val, count}, TensorView::of(out.data(), 8));
  });
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10))
      << "the other ranks must not wait for their timeout";
  EXPECT_EQ(outcomes[1].type, "InvalidArgument");
  EXPECT_THAT(outcomes[1].what, HasSubstr("count is 9 for a vector of 8 elements"));
  for (const int r : {0, 2}) {
    EXPECT_EQ(outcomes[static_cast<size_t>(r)].type, "CommError");
    EXPECT_THAT(outcomes[static_cast<size_t>(r)].what,
                HasSubstr("rank 1 passed invalid arguments"));
  }
  // A non-f32 output is refused the same way.
  const auto dt = run_each(2, std::chrono::seconds(30), [](Communicator& comm) {
    std::vector<double> out(4);
    SparseAllGather(comm).run(SparseVector{}, TensorView::of(out.data(), 4));
  });
  EXPECT_EQ(dt[0].type, "InvalidArgument");
  EXPECT_THAT(dt[0].what, HasSubstr("out holds f64; pass a dense f32 buffer"));
}

TEST(SparseAllGather, NumelMismatchIsInvalidArgumentOnEveryRank) {
  const auto outcomes = run_each(4, std::chrono::seconds(30), [](Communicator& comm) {
    const int64_t numel = comm.rank() == 2 ? 64 : 60;
    std::vector<float> out(static_cast<size_t>(numel));
    SparseAllGather(comm).run(SparseVector{}, TensorView::of(out.data(), numel));
  });
  for (const Outcome& o : outcomes) {
    EXPECT_EQ(o.type, "InvalidArgument") << o.what;
    EXPECT_THAT(o.what, HasSubstr("rank 2 passed a vector of 64 elements but rank 0 passed 60"));
  }
}

TEST(SparseAllGather, RingAllReduceBytes) {
  EXPECT_EQ(ring_all_reduce_bytes(4000, 1), 0u);
  EXPECT_EQ(ring_all_reduce_bytes(4000, 2), 4000u);
  EXPECT_EQ(ring_all_reduce_bytes(4000, 4), 6000u);
  EXPECT_EQ(ring_all_reduce_bytes(4000, 3), 5333u);  // 16000 / 3 rounded down
}

TEST(SparseAllGather, RecursiveDoublingBytes) {
  EXPECT_EQ(recursive_doubling_bytes(80, 1), 0u);
  EXPECT_EQ(recursive_doubling_bytes(80, 2), 80u);
  EXPECT_EQ(recursive_doubling_bytes(80, 4), 160u);
  EXPECT_EQ(recursive_doubling_bytes(80, 5), 240u);  // ceil(log2 5) = 3 rounds
  EXPECT_EQ(recursive_doubling_bytes(8, 1024), 80u);
}

}  // namespace
}  // namespace terse

// SparseAllGather and SparseAllReduce on CUDA views (docs/collectives.md, "On the GPU") against
// the same algorithms on host views, bit for bit: threads-as-ranks worlds of 1, 2 and 4 ranks
// sharing one GPU (a host communicator: the pairs are staged through the host), every rank's
// out, report, kept flags and boundaries over several steps; SparseAllReduce's selection with
// ties at the budget's boundary and with empty ranks and worlds; and the errors (a bad index on
// one rank, numel mismatch, a NaN, data corrupted on the wire in either phase) with the CPU's
// type and message on every rank and out untouched, and the GPU path's own argument checks.
// Skipped, saying why, without a GPU.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gpu_skip.h"
#include "sparse_test_ranks.h"
#include "sparse_test_util.h"
#include "terse/comm/algorithms/sparse_all_gather.h"
#include "terse/comm/algorithms/sparse_all_reduce.h"
#include "terse/comm/local_communicator.h"
#include "terse/kernels/cuda_buffer.h"

namespace terse {
namespace {

using testing::CorruptingCommunicator;
using testing::first_bit_difference;
using ::testing::HasSubstr;
using testing::make_pairs;
using testing::Outcome;
using testing::Pairs;
using testing::patched_world;
using testing::reference;
using testing::run_each;
using testing::run_on;

constexpr int kDevice = 0;
const Device kGpu = Device::cuda(kDevice);
constexpr auto kTimeout = std::chrono::seconds(60);

// One rank's pairs in the GPU's memory.
class DevicePairs {
 public:
  explicit DevicePairs(const Pairs& p)
      : count_(static_cast<int64_t>(p.indices.size())),
        idx_(kDevice, sizeof(int32_t) * (p.indices.size() + 1)),
        val_(kDevice, sizeof(float) * (p.values.size() + 1)) {
    cuda_copy(idx_.data(), p.indices.data(), sizeof(int32_t) * p.indices.size());
    cuda_copy(val_.data(), p.values.data(), sizeof(float) * p.values.size());
  }
  SparseVector view() const {
    return SparseVector{static_cast<const int32_t*>(idx_.data()),
                        static_cast<const float*>(val_.data()), count_, kGpu};
  }

 private:
  int64_t count_;
  CudaBuffer idx_, val_;
};

// A dense f32 vector of numel elements on the GPU, filled with NaN (the result must not depend
// on what out held).
class DeviceOut {
 public:
  explicit DeviceOut(int64_t numel)
      : numel_(numel), buf_(kDevice, sizeof(float) * static_cast<size_t>(numel + 1)) {
    const std::vector<float> nan(static_cast<size_t>(numel), std::nanf(""));
    cuda_copy(buf_.data(), nan.data(), sizeof(float) * nan.size());
  }
  TensorView view() const { return TensorView(buf_.data(), numel_, DType::kF32, kGpu); }
  std::vector<float> to_host() const {
    std::vector<float> h(static_cast<size_t>(numel_));
    cuda_copy(h.data(), buf_.data(), sizeof(float) * h.size());
    return h;
  }

 private:
  int64_t numel_;
  CudaBuffer buf_;
};

// Rank r's pairs under pattern p: rank r takes density kDensity[(r + p) % 4], so every world
// size meets a rank with no pair, one with every index, a sparse one and a half-full one.
Pairs pairs_for(int rank, int64_t numel, int pattern, uint64_t salt) {
  static const double kDensity[] = {0.0, 1.0, 0.02, 0.5};
  const double d = kDensity[(rank + pattern) % 4];
  if (d == 0.0) return Pairs{};
  return make_pairs(rank, numel, d, salt);
}

// ---- SparseAllGather ----

struct GatherRun {
  std::vector<std::vector<float>> out;
  std::vector<SparseAllGatherReport> report;
};

GatherRun run_gather(int world, int64_t numel, const std::vector<Pairs>& pairs,
                     SparseAllGather::Options opt, bool gpu) {
  GatherRun g;
  g.out.resize(static_cast<size_t>(world));
  g.report.resize(static_cast<size_t>(world));
  run_local_ranks(world, [&](Communicator& c) {
    const auto r = static_cast<size_t>(c.rank());
    SparseAllGather algo(c, opt);
    if (gpu) {
      const DevicePairs d(pairs[r]);
      const DeviceOut out(numel);
      g.report[r] = algo.run(d.view(), out.view());
      g.out[r] = out.to_host();
    } else {
      std::vector<float> out(static_cast<size_t>(numel), std::nanf(""));
      g.report[r] = algo.run(pairs[r].view(), TensorView::of(out.data(), numel));
      g.out[r] = out;
    }
  });
  return g;
}

TEST(CudaSparseAllGather, EqualsTheCpuBitForBit) {
  TERSE_SKIP_WITHOUT_GPU();
  int dense = 0, sparse = 0;
  uint64_t salt = 1;
  for (const int world : {1, 2, 4}) {
    for (const int64_t numel : {int64_t{1}, int64_t{4097}, int64_t{100003}}) {
      for (int pattern = 0; pattern < 4; ++pattern) {
        for (const bool average : {false, true}) {
          for (const bool fallback : {true, false}) {
            std::vector<Pairs> pairs;
            for (int r = 0; r < world; ++r) pairs.push_back(pairs_for(r, numel, pattern, salt));
            ++salt;
            SparseAllGather::Options opt;
            opt.reduction = average ? SparseReduction::kAverage : SparseReduction::kSum;
            opt.allow_dense_fallback = fallback;
            const GatherRun cpu = run_gather(world, numel, pairs, opt, false);
            const GatherRun gpu = run_gather(world, numel, pairs, opt, true);
            const std::string what = "world " + std::to_string(world) + ", numel " +
                                     std::to_string(numel) + ", pattern " +
                                     std::to_string(pattern) + (average ? ", average" : ", sum") +
                                     (fallback ? "" : ", forced sparse");
            for (int r = 0; r < world; ++r) {
              const auto ur = static_cast<size_t>(r);
              EXPECT_EQ(first_bit_difference(gpu.out[ur], cpu.out[ur]), -1)
                  << what << ": rank " << r;
              const SparseAllGatherReport& a = gpu.report[ur];
              const SparseAllGatherReport& b = cpu.report[ur];
              EXPECT_STREQ(a.path, b.path) << what;
              EXPECT_EQ(a.dense_fallback, b.dense_fallback) << what;
              EXPECT_EQ(a.bytes_sent, b.bytes_sent) << what;
              EXPECT_EQ(a.bytes_dense, b.bytes_dense) << what;
              EXPECT_EQ(a.bytes_sparse, b.bytes_sparse) << what;
              EXPECT_EQ(a.total_count, b.total_count) << what;
              EXPECT_EQ(a.max_count, b.max_count) << what;
            }
            if (gpu.report[0].dense_fallback) {
              ++dense;
            } else {
              ++sparse;
              // The sparse path is also the rank-order reference (independent of the CPU run).
              EXPECT_EQ(first_bit_difference(gpu.out[0], reference(pairs, numel, average)), -1)
                  << what;
            }
          }
        }
      }
    }
  }
  EXPECT_GT(dense, 0) << "no case took the dense fallback";
  EXPECT_GT(sparse, 0) << "no case took the sparse path";
}

// Rank `bad_rank` of 4 holds `bad` as its indices (values 1), the others good pairs; `numel_of`
// gives each rank's numel. Returns every rank's outcome on the CPU and on the GPU.
struct BothOutcomes {
  std::vector<Outcome> cpu, gpu;
};

template <typename Run>
BothOutcomes run_both(int world, const std::function<Pairs(int)>& pairs_of,
                      const std::function<int64_t(int)>& numel_of, Run run) {
  BothOutcomes o;
  for (const bool gpu : {false, true}) {
    auto outcomes = run_each(world, kTimeout, [&](Communicator& c) {
      const Pairs p = pairs_of(c.rank());
      const int64_t numel = numel_of(c.rank());
      if (gpu) {
        const DevicePairs d(p);
        const DeviceOut out(numel);
        run(c, d.view(), out.view());
      } else {
        std::vector<float> out(static_cast<size_t>(numel));
        run(c, p.view(), TensorView::of(out.data(), numel));
      }
    });
    (gpu ? o.gpu : o.cpu) = std::move(outcomes);
  }
  return o;
}

void expect_same_outcomes(const BothOutcomes& o, const std::string& type, const std::string& what) {
  ASSERT_EQ(o.cpu.size(), o.gpu.size());
  for (size_t r = 0; r < o.cpu.size(); ++r) {
    EXPECT_EQ(o.cpu[r].type, type) << what << ": rank " << r << ": " << o.cpu[r].what;
    EXPECT_EQ(o.gpu[r].type, o.cpu[r].type) << what << ": rank " << r << ": " << o.gpu[r].what;
    EXPECT_EQ(o.gpu[r].what, o.cpu[r].what) << what << ": rank " << r;
  }
}

Pairs pairs_of_indices(const std::vector<int32_t>& idx) {
  Pairs p;
  p.indices = idx;
  p.values.assign(idx.size(), 1.0f);
  return p;
}

const std::vector<std::vector<int32_t>> kBadIndices = {
    {1, 5, 70000},  // out of range (numel 4097)
    {-1, 4},        // negative
    {5, 3},         // not increasing
    {2, 3, 3},      // repeated
};

TEST(CudaSparseAllGather, BadIndexOnOneRankFailsEveryRankAsOnTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  const int64_t numel = 4097;
  for (const auto& bad : kBadIndices) {
    for (const bool fallback : {true, false}) {
      SparseAllGather::Options opt;
      opt.allow_dense_fallback = fallback;
      const BothOutcomes o = run_both(
          4, [&](int r) { return r == 2 ? pairs_of_indices(bad) : make_pairs(r, numel, 0.1, 7); },
          [&](int) { return numel; },
          [&](Communicator& c, const SparseVector& v, TensorView out) {
            SparseAllGather(c, opt).run(v, out);
          });
      expect_same_outcomes(o, "CorruptData", "bad index " + std::to_string(bad.back()));
      for (const Outcome& g : o.gpu) EXPECT_THAT(g.what, HasSubstr("rank 2 sent bad pairs"));
    }
  }
}

TEST(CudaSparseAllGather, NumelMismatchFailsEveryRankAsOnTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  const BothOutcomes o = run_both(
      4, [](int r) { return make_pairs(r, 1000, 0.05, 3); },
      [](int r) -> int64_t { return r == 1 ? 1001 : 1000; },
      [](Communicator& c, const SparseVector& v, TensorView out) {
        SparseAllGather(c).run(v, out);
      });
  expect_same_outcomes(o, "InvalidArgument", "numel mismatch");
  for (const Outcome& g : o.gpu) {
    EXPECT_THAT(g.what,
                HasSubstr("rank 1 passed a vector of 1001 elements but rank 0 passed 1000"));
  }
}

// Every rank of a corrupting world (CorruptingCommunicator) runs the algorithm on the GPU, or the
// CPU, with the pairs {2, 3, 5} of a 100-element vector.
std::vector<Outcome> run_corrupted(int world, int victim, CorruptingCommunicator::Mode mode,
                                   int64_t position, int32_t value, bool gpu) {
  auto locals = make_local_communicators(world);
  std::vector<std::unique_ptr<Communicator>> comms;
  for (auto& l : locals) {
    l->set_timeout(kTimeout);
    comms.push_back(
        std::make_unique<CorruptingCommunicator>(std::move(l), victim, mode, position, value));
  }
  return run_on(comms, [gpu](Communicator& comm) {
    const Pairs p = pairs_of_indices({2, 3, 5});
    SparseAllGather algo(comm);
    if (gpu) {
      const DevicePairs d(p);
      const DeviceOut out(100);
      algo.run(d.view(), out.view());
    } else {
      std::vector<float> out(100);
      algo.run(p.view(), TensorView::of(out.data(), 100));
    }
  });
}

TEST(CudaSparseAllGather, ReceivedBlocksAreCheckedOnTheGpuAsOnTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  struct Corruption {
    int64_t position;
    int32_t value;
    const char* reason;
  };
  const Corruption kCases[] = {
      {0, std::numeric_limits<int32_t>::max(), "at position 0 of 3, index 2147483647 is outside"},
      {1, 0, "at position 1 of 3, index 0 does not follow 2"},
      {2, 3, "at position 2 of 3, index 3 does not follow 3"},
  };
  for (const Corruption& k : kCases) {
    for (const int world : {2, 4}) {
      const int victim = world / 2;
      BothOutcomes o;
      o.cpu = run_corrupted(world, victim, CorruptingCommunicator::Mode::kIndex, k.position,
                            k.value, false);
      o.gpu = run_corrupted(world, victim, CorruptingCommunicator::Mode::kIndex, k.position,
                            k.value, true);
      expect_same_outcomes(o, "CorruptData", k.reason);
      for (const Outcome& g : o.gpu) {
        EXPECT_THAT(g.what, HasSubstr("pairs received from rank " + std::to_string(victim) + ": " +
                                      k.reason));
      }
    }
  }
}

TEST(CudaSparseAllGather, MixedDevicesAndHostPointersAreBadArguments) {
  TERSE_SKIP_WITHOUT_GPU();
  // Rank 3: host pairs with a GPU out; the others fail fast naming it.
  auto o = run_each(4, kTimeout, [](Communicator& c) {
    const Pairs p = make_pairs(c.rank(), 500, 0.1, 5);
    const DeviceOut out(500);
    if (c.rank() == 3) {
      SparseAllGather(c).run(p.view(), out.view());
    } else {
      const DevicePairs d(p);
      SparseAllGather(c).run(d.view(), out.view());
    }
  });
  for (int r = 0; r < 4; ++r) {
    const Outcome& x = o[static_cast<size_t>(r)];
    if (r == 3) {
      EXPECT_EQ(x.type, "InvalidArgument") << x.what;
      EXPECT_THAT(x.what, HasSubstr("the pairs are on cpu but out is on cuda:0"));
    } else {
      EXPECT_EQ(x.type, "CommError") << x.what;
      EXPECT_THAT(x.what, HasSubstr("rank 3 passed invalid arguments"));
    }
  }
  // Rank 1: host memory labelled cuda:0.
  o = run_each(2, kTimeout, [](Communicator& c) {
    const Pairs p = make_pairs(c.rank(), 500, 0.1, 5);
    const DeviceOut out(500);
    if (c.rank() == 1) {
      SparseVector lie = p.view();
      lie.device = kGpu;
      SparseAllGather(c).run(lie, out.view());
    } else {
      const DevicePairs d(p);
      SparseAllGather(c).run(d.view(), out.view());
    }
  });
  EXPECT_EQ(o[1].type, "InvalidArgument") << o[1].what;
  EXPECT_THAT(o[1].what, HasSubstr("is labelled cuda:0 but is not memory of that GPU"));
  EXPECT_EQ(o[0].type, "CommError") << o[0].what;
}

// ---- SparseAllReduce ----

struct ReduceRun {
  // [step][rank]
  std::vector<std::vector<std::vector<float>>> out;
  std::vector<std::vector<SparseAllReduceReport>> report;
  std::vector<std::vector<std::vector<int64_t>>> boundaries;
};

ReduceRun run_reduce(int world, int64_t numel, const std::vector<std::vector<Pairs>>& steps,
                     int64_t budget, SparseAllReduce::Options opt, bool gpu) {
  ReduceRun g;
  const size_t ns = steps.size(), nw = static_cast<size_t>(world);
  g.out.assign(ns, std::vector<std::vector<float>>(nw));
  g.report.assign(ns, std::vector<SparseAllReduceReport>(nw));
  g.boundaries.assign(ns, std::vector<std::vector<int64_t>>(nw));
  run_local_ranks(world, [&](Communicator& c) {
    const auto r = static_cast<size_t>(c.rank());
    SparseAllReduce algo(c, opt);
    for (size_t s = 0; s < ns; ++s) {
      const Pairs& p = steps[s][r];
      if (gpu) {
        const DevicePairs d(p);
        const DeviceOut out(numel);
        g.report[s][r] = algo.run(d.view(), budget, out.view());
        g.out[s][r] = out.to_host();
      } else {
        std::vector<float> out(static_cast<size_t>(numel), std::nanf(""));
        g.report[s][r] = algo.run(p.view(), budget, TensorView::of(out.data(), numel));
        g.out[s][r] = out;
      }
      g.boundaries[s][r] = algo.boundaries();
    }
  });
  return g;
}

// Every step's out, report (kept flags included) and boundaries on every rank, bit for bit.
void expect_same_runs(const ReduceRun& gpu, const ReduceRun& cpu, const std::string& what) {
  ASSERT_EQ(gpu.out.size(), cpu.out.size()) << what;
  for (size_t s = 0; s < cpu.out.size(); ++s) {
    for (size_t r = 0; r < cpu.out[s].size(); ++r) {
      const std::string at = what + ", step " + std::to_string(s) + ", rank " + std::to_string(r);
      EXPECT_EQ(first_bit_difference(gpu.out[s][r], cpu.out[s][r]), -1) << at;
      const SparseAllReduceReport& a = gpu.report[s][r];
      const SparseAllReduceReport& b = cpu.report[s][r];
      EXPECT_STREQ(a.path, b.path) << at;
      EXPECT_EQ(a.kept, b.kept) << at;
      EXPECT_EQ(a.dropped, b.dropped) << at;
      EXPECT_EQ(a.selected, b.selected) << at;
      EXPECT_EQ(a.sent_pairs_phase1, b.sent_pairs_phase1) << at;
      EXPECT_EQ(a.sent_pairs_phase3, b.sent_pairs_phase3) << at;
      EXPECT_EQ(a.bytes_control, b.bytes_control) << at;
      EXPECT_EQ(a.bytes_sent, b.bytes_sent) << at;
      EXPECT_EQ(a.bytes_dense, b.bytes_dense) << at;
      EXPECT_EQ(gpu.boundaries[s][r], cpu.boundaries[s][r]) << at;
    }
  }
}

TEST(CudaSparseAllReduce, EqualsTheCpuBitForBit) {
  TERSE_SKIP_WITHOUT_GPU();
  uint64_t salt = 100;
  int64_t dropped = 0, selected = 0;
  for (const int world : {1, 2, 4}) {
    for (const int64_t numel : {int64_t{1}, int64_t{4097}, int64_t{100003}}) {
      for (const auto quota :
           {SparseAllReduce::Quota::kWaterFill, SparseAllReduce::Quota::kFixed}) {
        for (const bool average : {false, true}) {
          for (const int64_t budget : {numel / 40 + 1, numel}) {
            for (int pattern = 0; pattern < 4; ++pattern) {
              std::vector<std::vector<Pairs>> steps(3);
              for (auto& s : steps) {
                for (int r = 0; r < world; ++r) s.push_back(pairs_for(r, numel, pattern, salt));
                ++salt;
              }
              SparseAllReduce::Options opt;
              opt.reduction = average ? SparseReduction::kAverage : SparseReduction::kSum;
              opt.quota = quota;
              const ReduceRun cpu = run_reduce(world, numel, steps, budget, opt, false);
              const ReduceRun gpu = run_reduce(world, numel, steps, budget, opt, true);
              const std::string what =
                  "world " + std::to_string(world) + ", numel " + std::to_string(numel) +
                  (quota == SparseAllReduce::Quota::kFixed ? ", fixed" : ", water-fill") +
                  (average ? ", average" : ", sum") + ", budget " + std::to_string(budget) +
                  ", pattern " + std::to_string(pattern);
              expect_same_runs(gpu, cpu, what);
              for (const auto& step : gpu.report) {
                for (const SparseAllReduceReport& a : step) {
                  dropped += a.dropped;
                  selected += a.selected;
                }
              }
            }
          }
        }
      }
    }
  }
  EXPECT_GT(dropped, 0) << "no case dropped a pair (the budget never bit)";
  EXPECT_GT(selected, 0) << "no case selected a pair";
}

TEST(CudaSparseAllReduce, BadInputsFailEveryRankAsOnTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  const int64_t numel = 4097;
  for (const auto quota : {SparseAllReduce::Quota::kWaterFill, SparseAllReduce::Quota::kFixed}) {
    SparseAllReduce::Options opt;
    opt.quota = quota;
    auto run = [&](Communicator& c, const SparseVector& v, TensorView out) {
      SparseAllReduce(c, opt).run(v, 400, out);
    };
    for (const auto& bad : kBadIndices) {
      const BothOutcomes o = run_both(
          4, [&](int r) { return r == 2 ? pairs_of_indices(bad) : make_pairs(r, numel, 0.05, 9); },
          [&](int) { return numel; }, run);
      expect_same_outcomes(o, "CorruptData", "bad index " + std::to_string(bad.back()));
    }
    BothOutcomes o = run_both(
        4,
        [&](int r) {
          Pairs p = make_pairs(r, numel, 0.05, 9);
          if (r == 1 && !p.values.empty()) p.values.back() = std::nanf("");
          return p;
        },
        [&](int) { return numel; }, run);
    expect_same_outcomes(o, "NumericalError", "NaN on rank 1");
    o = run_both(
        4, [&](int r) { return make_pairs(r, numel, 0.05, 9); },
        [&](int r) { return r == 3 ? numel + 1 : numel; }, run);
    expect_same_outcomes(o, "InvalidArgument", "numel mismatch");
  }
}

// The water-filled selection of `out` (kSum, step pairs `all`, ranges `bounds`), checked apart
// from both algorithms: per range, every selected index (out != 0) ranks above every unselected
// candidate of non-zero sum by (|sum|, then the lower index). Returns the ranges where the budget
// cut through a tie (a selected and an unselected candidate of equal |sum|).
int64_t check_selection_rule(const std::vector<Pairs>& all, const std::vector<float>& out,
                             const std::vector<int64_t>& bounds, const std::string& what) {
  const std::vector<float> sum = reference(all, static_cast<int64_t>(out.size()), false);
  std::vector<uint8_t> candidate(out.size(), 0);
  for (const Pairs& p : all) {
    for (const int32_t i : p.indices) candidate[static_cast<size_t>(i)] = 1;
  }
  int64_t ties = 0;
  for (size_t r = 0; r + 1 < bounds.size(); ++r) {
    // The lowest-ranked selected and the highest-ranked unselected: (|sum|, -index).
    int64_t low_sel = -1, high_unsel = -1;
    auto above = [&](int64_t i, int64_t j) {  // i ranks above j
      const float ai = std::fabs(sum[static_cast<size_t>(i)]);
      const float aj = std::fabs(sum[static_cast<size_t>(j)]);
      return ai > aj || (ai == aj && i < j);
    };
    for (int64_t i = bounds[r]; i < bounds[r + 1]; ++i) {
      const auto ui = static_cast<size_t>(i);
      if (!candidate[ui] || sum[ui] == 0.0f) continue;
      if (out[ui] != 0.0f) {
        EXPECT_EQ(out[ui], sum[ui]) << what << ": index " << i;
        if (low_sel < 0 || above(low_sel, i)) low_sel = i;
      } else if (high_unsel < 0 || above(i, high_unsel)) {
        high_unsel = i;
      }
    }
    if (low_sel < 0 || high_unsel < 0) continue;
    EXPECT_TRUE(above(low_sel, high_unsel))
        << what << ", range " << r << ": selected " << low_sel << " (|sum| "
        << std::fabs(sum[static_cast<size_t>(low_sel)]) << ") ranks below unselected " << high_unsel
        << " (|sum| " << std::fabs(sum[static_cast<size_t>(high_unsel)]) << ")";
    if (std::fabs(sum[static_cast<size_t>(low_sel)]) ==
        std::fabs(sum[static_cast<size_t>(high_unsel)])) {
      ++ties;
    }
  }
  return ties;
}

// Values on a grid of 1/4 in [-4, 4] (make_pairs' exact mode): many sums share |sum| (zero
// included), so the budget cuts through ties in phase 2, and in the fixed mode through ties of
// |value| in phase 1, where the lower index must win. Steps: every rank holds pairs; the last
// rank holds none; no rank holds any; pairs again on the rebalanced ranges.
TEST(CudaSparseAllReduce, TiesAtTheBudgetAndEmptyRanksAsOnTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  const int64_t numel = 20011;
  uint64_t salt = 900;
  int64_t ties = 0, dropped = 0;
  for (const int world : {1, 2, 4}) {
    for (const auto quota : {SparseAllReduce::Quota::kWaterFill, SparseAllReduce::Quota::kFixed}) {
      for (const int64_t budget : {int64_t{1}, int64_t{37}, numel / 50, numel / 7}) {
        std::vector<std::vector<Pairs>> steps(4);
        for (size_t s = 0; s < steps.size(); ++s) {
          for (int r = 0; r < world; ++r) {
            const bool empty = s == 2 || (s == 1 && r == world - 1);
            steps[s].push_back(empty ? Pairs{} : make_pairs(r, numel, 0.05 + 0.1 * r, salt, true));
            ++salt;
          }
        }
        SparseAllReduce::Options opt;
        opt.reduction = SparseReduction::kSum;
        opt.quota = quota;
        const ReduceRun cpu = run_reduce(world, numel, steps, budget, opt, false);
        const ReduceRun gpu = run_reduce(world, numel, steps, budget, opt, true);
        const std::string what =
            "world " + std::to_string(world) +
            (quota == SparseAllReduce::Quota::kFixed ? ", fixed" : ", water-fill") + ", budget " +
            std::to_string(budget);
        expect_same_runs(gpu, cpu, what);
        for (size_t s = 0; s < steps.size(); ++s) {
          for (const SparseAllReduceReport& a : gpu.report[s]) dropped += a.dropped;
          if (s == 2) {
            for (const auto& out : gpu.out[s]) {
              EXPECT_EQ(first_bit_difference(out, std::vector<float>(out.size(), 0.0f)), -1)
                  << what << ": no pairs anywhere must give zeros";
            }
          }
          if (quota != SparseAllReduce::Quota::kWaterFill) continue;
          // The ranges step s ran on: equal at first, then the last step's rebalanced ones.
          const std::vector<int64_t> bounds =
              s == 0 ? SparseAllReduce::equal_boundaries(numel, world) : cpu.boundaries[s - 1][0];
          ties += check_selection_rule(steps[s], gpu.out[s][0], bounds,
                                       what + ", step " + std::to_string(s));
        }
      }
    }
  }
  EXPECT_GT(ties, 0) << "no budget cut through a tie of |sum|";
  EXPECT_GT(dropped, 0) << "no case dropped a pair";
}

// Rank 1 of 3 corrupts what every rank receives from it in phase `phase` (1: the all_to_allv,
// 3: the all_gatherv; indices or values by dtype), on the host copies that the GPU path stages
// through. Each rank holds the pairs at `idx` (values 1, 2, ...) of a 99-element vector on the
// GPU or the CPU. On the GPU, a rank that throws must leave out untouched (still NaN).
std::vector<testing::Outcome> run_reduce_patched(
    bool gpu, SparseAllReduce::Quota quota, int64_t budget, const std::vector<int32_t>& idx,
    int phase, DType dtype, const std::function<void(int32_t*, float*)>& patch) {
  const int world = 3, victim = 1;
  const int64_t numel = 99;
  auto comms = patched_world(world, victim, phase, dtype, patch, kTimeout);
  Pairs p;
  p.indices = idx;
  for (size_t i = 0; i < idx.size(); ++i) p.values.push_back(static_cast<float>(i + 1));
  SparseAllReduce::Options opt;
  opt.quota = quota;
  return run_on(comms, [&](Communicator& c) {
    if (!gpu) {
      std::vector<float> out(static_cast<size_t>(numel));
      SparseAllReduce(c, opt).run(p.view(), budget, TensorView::of(out.data(), numel));
      return;
    }
    const DevicePairs d(p);
    const DeviceOut out(numel);
    try {
      SparseAllReduce(c, opt).run(d.view(), budget, out.view());
    } catch (...) {
      for (const float x : out.to_host()) EXPECT_TRUE(std::isnan(x)) << "out was written";
      throw;
    }
  });
}

TEST(CudaSparseAllReduce, BlocksCorruptedOnTheWireFailAsOnTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  using Quota = SparseAllReduce::Quota;
  struct Case {
    Quota quota;
    int phase;
    DType dtype;
    std::function<void(int32_t*, float*)> patch;
    const char* what;  // in every rank's message
  };
  constexpr int32_t kMax = std::numeric_limits<int32_t>::max();
  const std::string p1 = "pairs received from rank 1 for this rank's range: at position ";
  const std::string p3 = "selection received from rank 1: at position ";
  const std::vector<Case> cases = {
      // Water-filled blocks of two pairs (each rank sends two into each range, budget 6).
      {Quota::kWaterFill, 1, DType::kI32, [](int32_t* i, float*) { i[0] = kMax; },
       "0 of 2, index 2147483647 is outside ["},
      {Quota::kWaterFill, 1, DType::kI32, [](int32_t* i, float*) { i[1] = i[0]; }, "1 of 2, index"},
      {Quota::kWaterFill, 3, DType::kI32, [](int32_t* i, float*) { i[0] = -5; },
       "0 of 2, index -5 is outside [33, 66)"},
      {Quota::kWaterFill, 3, DType::kI32, [](int32_t* i, float*) { i[1] = 40; },
       "1 of 2, index 40 does not follow 50"},
      // Fixed blocks of two slots (one real pair, one padding; budget 6).
      {Quota::kFixed, 1, DType::kI32, [](int32_t* i, float*) { i[0] = kMax; },
       "0 of 2, index 2147483647 is outside ["},
      {Quota::kFixed, 1, DType::kI32,
       [](int32_t* i, float*) {
         i[1] = i[0];
         i[0] = SparseAllReduce::kPadIndex;
       },
       "1 of 2, index"},
      {Quota::kFixed, 1, DType::kF32, [](int32_t*, float* v) { v[1] = 0.5f; },
       "1 of 2, the padding carries value 0.5"},
      {Quota::kFixed, 1, DType::kF32,
       [](int32_t*, float* v) { v[0] = std::numeric_limits<float>::infinity(); },
       "0 of 2, value inf"},
      {Quota::kFixed, 3, DType::kI32, [](int32_t* i, float*) { i[0] = kMax; },
       "0 of 2, index 2147483647 is outside [33, 66)"},
      {Quota::kFixed, 3, DType::kF32, [](int32_t*, float* v) { v[1] = -1.0f; },
       "1 of 2, the padding carries value -1"},
      {Quota::kFixed, 3, DType::kF32, [](int32_t*, float* v) { v[0] = std::nanf(""); },
       "0 of 2, value nan"},
  };
  for (const Case& k : cases) {
    const bool fixed = k.quota == Quota::kFixed;
    const std::vector<int32_t> idx =
        fixed ? std::vector<int32_t>{10, 50, 90} : std::vector<int32_t>{10, 11, 50, 51, 90, 91};
    BothOutcomes o;
    o.cpu = run_reduce_patched(false, k.quota, 6, idx, k.phase, k.dtype, k.patch);
    o.gpu = run_reduce_patched(true, k.quota, 6, idx, k.phase, k.dtype, k.patch);
    const std::string what = std::string(fixed ? "fixed" : "water-fill") + ", phase " +
                             std::to_string(k.phase) + ": " + k.what;
    expect_same_outcomes(o, "CorruptData", what);
    for (const testing::Outcome& g : o.gpu) {
      EXPECT_THAT(g.what, HasSubstr((k.phase == 1 ? p1 : p3) + k.what)) << what;
    }
  }
  // Unpatched, the same calls succeed on the GPU (so the failures above are the patches').
  for (const Quota quota : {Quota::kWaterFill, Quota::kFixed}) {
    for (const testing::Outcome& g : run_reduce_patched(true, quota, 6, {10, 11, 50, 51, 90, 91}, 3,
                                                        DType::kU8, [](int32_t*, float*) {})) {
      EXPECT_EQ(g.type, "") << g.what;
    }
  }
}

}  // namespace
}  // namespace terse

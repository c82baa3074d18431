// PowerSgd over the MPI backend, on every rank: against the same computation on threads-as-ranks
// in this process (itself checked against the equations in tests/unit), bit-identical on every
// rank, the dense warm-up bit-exact, and the agreed errors. Run under mpiexec (CTest:
// multirank.power_sgd).

#include "terse/comm/algorithms/power_sgd.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#include "terse/comm/communicator.h"
#include "terse/comm/local_communicator.h"
#include "terse/core/philox.h"

namespace terse {
namespace {

using ::testing::HasSubstr;
using Mat = std::vector<float>;

Communicator* g_comm = nullptr;

struct Shape {
  int64_t rows, cols;
};

const std::vector<Shape> kShapes = {{256, 128}, {1, 300}, {8, 8}, {64, 200}, {33, 17}};

// Entries uniform in [-1, 1) or, with `exact`, multiples of 1/4 in [-4, 4] (sums exact in any
// order); a function of (salt, rank, step, tensor).
Mat random_matrix(Shape s, uint64_t salt, int rank, int64_t step, size_t t, bool exact = false) {
  PhiloxStream rng(salt * 1000003u + static_cast<uint64_t>(step) * 131u + t,
                   static_cast<uint64_t>(rank));
  Mat m(static_cast<size_t>(s.rows * s.cols));
  for (float& x : m) {
    x = exact ? static_cast<float>(static_cast<int>(rng.below(33)) - 16) * 0.25f
              : 2.0f * rng.uniform() - 1.0f;
  }
  return m;
}

std::vector<Mat> inputs(int rank, int64_t step, uint64_t salt, bool exact = false) {
  std::vector<Mat> g;
  for (size_t t = 0; t < kShapes.size(); ++t) {
    g.push_back(random_matrix(kShapes[t], salt, rank, step, t, exact));
  }
  return g;
}

std::vector<MatrixView> views(std::vector<Mat>& ms) {
  std::vector<MatrixView> v;
  for (size_t t = 0; t < ms.size(); ++t)
    v.push_back({ms[t].data(), kShapes[t].rows, kShapes[t].cols});
  return v;
}

double max_rel_diff(const Mat& a, const Mat& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::abs(double{a[i]} - b[i]) / std::max(1.0, std::abs(double{b[i]}));
    worst = std::max(worst, std::isnan(d) ? std::numeric_limits<double>::infinity() : d);
  }
  return worst;
}

// True when every rank holds the same bits in `m`.
bool same_on_every_rank(const Mat& m) {
  const int64_t n = static_cast<int64_t>(m.size());
  Mat all(m.size() * static_cast<size_t>(g_comm->size()));
  g_comm->all_gather(TensorView::of(const_cast<float*>(m.data()), n),
                     TensorView::of(all.data(), static_cast<int64_t>(all.size())));
  for (int r = 0; r < g_comm->size(); ++r) {
    if (std::memcmp(all.data() + r * n, m.data(), m.size() * sizeof(float)) != 0) return false;
  }
  return true;
}

TEST(MpiPowerSgd, MatchesThreadsAsRanksAndIsIdenticalOnEveryRank) {
  const int world = g_comm->size();
  const int me = g_comm->rank();
  const int64_t steps = 8;
  for (const bool ef : {true, false}) {
    PowerSgd::Options opt;
    opt.rank = 2;
    opt.start_iter = 2;
    opt.error_feedback = ef;
    opt.seed = 3;
    // The reference: the same world on threads, in this process, keeping rank `me`'s results.
    std::vector<std::vector<Mat>> want(static_cast<size_t>(steps));
    std::mutex mu;
    run_local_ranks(world, [&](Communicator& comm) {
      PowerSgd algo(comm, opt);
      for (int64_t s = 0; s < steps; ++s) {
        auto g = inputs(comm.rank(), s, 7);
        algo.run(views(g), s);
        if (comm.rank() == me) {
          std::lock_guard<std::mutex> lock(mu);
          want[static_cast<size_t>(s)] = g;
        }
      }
    });
    PowerSgd algo(*g_comm, opt);
    for (int64_t s = 0; s < steps; ++s) {
      auto g = inputs(me, s, 7);
      const PowerSgdReport rep = algo.run(views(g), s);
      EXPECT_STREQ(rep.path, s < 2 ? "dense" : "powersgd");
      // 256x128, 64x200 and 33x17 are compressed; 1x300 and 8x8 go dense.
      EXPECT_EQ(rep.compressed_matrices, s < 2 ? 0 : 3);
      for (size_t t = 0; t < g.size(); ++t) {
        EXPECT_LE(max_rel_diff(g[t], want[static_cast<size_t>(s)][t]), 1e-5)
            << "ef " << ef << " step " << s << " tensor " << t << " rank " << me;
        EXPECT_TRUE(same_on_every_rank(g[t])) << "step " << s << " tensor " << t;
      }
    }
  }
}

TEST(MpiPowerSgd, WarmupIsTheExactDenseAverage) {
  const int world = g_comm->size();
  PowerSgd::Options opt;
  opt.start_iter = 2;
  PowerSgd algo(*g_comm, opt);
  for (int64_t s = 0; s < 2; ++s) {
    auto g = inputs(g_comm->rank(), s, 9, /*exact=*/true);
    const PowerSgdReport rep = algo.run(views(g), s);
    EXPECT_STREQ(rep.path, "dense");
    for (size_t t = 0; t < g.size(); ++t) {
      Mat want(g[t].size(), 0.0f);
      for (int k = 0; k < world; ++k) {
        const Mat in = random_matrix(kShapes[t], 9, k, s, t, true);
        for (size_t j = 0; j < want.size(); ++j) want[j] += in[j];
      }
      for (float& x : want) x /= static_cast<float>(world);
      EXPECT_EQ(std::memcmp(g[t].data(), want.data(), want.size() * sizeof(float)), 0)
          << "step " << s << " tensor " << t;
    }
  }
}

TEST(MpiPowerSgd, StateDictRoundTrip) {
  PowerSgd::Options opt;
  opt.start_iter = 1;
  PowerSgd a(*g_comm, opt), b(*g_comm, opt);
  for (int64_t s = 0; s < 4; ++s) {
    auto g = inputs(g_comm->rank(), s, 13);
    a.run(views(g), s);
  }
  b.load_state_dict(a.state_dict());
  for (int64_t s = 4; s < 7; ++s) {
    auto ga = inputs(g_comm->rank(), s, 13), gb = ga;
    a.run(views(ga), s);
    b.run(views(gb), s);
    for (size_t t = 0; t < ga.size(); ++t) {
      EXPECT_EQ(std::memcmp(ga[t].data(), gb[t].data(), ga[t].size() * sizeof(float)), 0)
          << "step " << s << " tensor " << t;
    }
  }
}

TEST(MpiPowerSgd, MismatchedShapesAndNonFiniteFailOnEveryRank) {
  if (g_comm->size() == 1) GTEST_SKIP() << "needs two ranks";
  const int bad = g_comm->size() > 2 ? 2 : 1;
  const int me = g_comm->rank();
  {
    std::vector<Mat> g = inputs(me, 0, 1);
    auto v = views(g);
    if (me == bad) std::swap(v[3].rows, v[3].cols);
    PowerSgd algo(*g_comm, PowerSgd::Options());
    try {
      algo.run(v, 20);
      ADD_FAILURE() << "rank " << me << " did not throw";
    } catch (const InvalidArgument& e) {
      EXPECT_THAT(e.what(),
                  HasSubstr(me == bad ? "tensor 3 is 200x64 on rank " + std::to_string(me) +
                                            " and 64x200 on rank 0"
                                      : "tensor 3 is 64x200 on rank " + std::to_string(me) +
                                            " and 200x64 on rank " + std::to_string(bad)));
    }
  }
  for (const int64_t step : {int64_t{0}, int64_t{20}}) {  // dense warm-up, compressed
    PowerSgd algo(*g_comm, PowerSgd::Options());
    std::vector<Mat> g = inputs(me, 0, 1);
    algo.run(views(g), step);
    g = inputs(me, 1, 1);
    if (me == bad) g[0][100] = std::numeric_limits<float>::infinity();
    const std::vector<Mat> before = g;
    try {
      algo.run(views(g), step + 1);
      ADD_FAILURE() << "rank " << me << " did not throw";
    } catch (const NumericalError& e) {
      EXPECT_THAT(e.what(), HasSubstr("rank " + std::to_string(bad) + " tensor 0 (256x128)"));
    }
    for (size_t t = 0; t < g.size(); ++t) {
      EXPECT_EQ(std::memcmp(g[t].data(), before[t].data(), g[t].size() * sizeof(float)), 0);
    }
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
    std::printf("multirank power_sgd: %d ranks, %s\n", comm->size(),
                failed ? "FAILED on some rank" : "all passed");
  }
  comm.reset();
  return failed;
}

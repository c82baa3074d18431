// PowerSgd on CUDA views over NCCL (P and Q all-reduced in place in GPU memory, the shape check
// and the verdicts staged through it) against the same GPU run over MPI (P and Q through the
// host), bit for bit (one or two ranks: a sum of two is the same in any order), and against the
// CPU run over MPI within the tolerance of docs/collectives.md ("On the GPU"); every rank equal
// bit for bit; a non-finite gradient and host views refused on every rank. Run under mpiexec -n 1
// and -n 2 (CTest: multirank.power_sgd_nccl_1, _2); every test skips, saying why, where there is
// no GPU or fewer GPUs than ranks on the node.

#include <cuda_runtime.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cuda_power_sgd_test_util.h"
#include "terse/comm/algorithms/power_sgd.h"
#include "terse/comm/communicator.h"
#include "terse/comm/nccl_communicator.h"
#include "terse/core/error.h"

namespace terse::psgd_test {
namespace {

using ::testing::HasSubstr;

Communicator* g_mpi = nullptr;
Communicator* g_nccl = nullptr;
std::string g_skip_reason;

#define REQUIRE_NCCL() \
  if (g_nccl == nullptr) GTEST_SKIP() << g_skip_reason

const std::vector<Tensor> kTensors = {
    {256, 256},
    {1024, 64},
    {64, 1024},
    {1, 50},
    {8, 8},
    {128, 96, Fill::kZeroColumn},
    {64, 48, Fill::kZero},
};

// Every step's outputs of this rank, and the scale of each step's input (max |M| + max |e|).
struct Steps {
  std::vector<std::vector<Mat>> out;
  std::vector<std::vector<double>> scale;
};

Steps run_steps(Communicator& comm, bool gpu, const PowerSgd::Options& opt, int64_t steps) {
  const int device = g_nccl->device().index;
  Steps r;
  PowerSgd algo(comm, opt);
  for (int64_t s = 0; s < steps; ++s) {
    std::vector<Mat> g = make_grads(kTensors, 21, g_mpi->rank(), s);
    const StateDict before = algo.state_dict();
    std::vector<double> sc;
    for (size_t t = 0; t < kTensors.size(); ++t) {
      const auto key = "powersgd.error." + std::to_string(t);
      const double e = before.tensors.count(key) ? max_abs(floats_of(before.tensor(key))) : 0;
      sc.push_back(max_abs(g[t]) + e);
    }
    r.scale.push_back(sc);
    if (gpu) {
      const DeviceGrads d(g, kTensors, device);
      algo.run(d.views(), s);
      r.out.push_back(d.to_host());
    } else {
      algo.run(host_views(g, kTensors), s);
      r.out.push_back(g);
    }
  }
  return r;
}

// True when every rank holds these bits.
bool same_on_every_rank(const Mat& m) {
  const auto n = static_cast<int64_t>(m.size());
  std::vector<float> all(static_cast<size_t>(n * g_mpi->size()));
  g_mpi->all_gather(TensorView::of(const_cast<float*>(m.data()), n),
                    TensorView::of(all.data(), static_cast<int64_t>(all.size())));
  for (int r = 0; r < g_mpi->size(); ++r) {
    if (std::memcmp(all.data() + r * n, m.data(), m.size() * sizeof(float)) != 0) return false;
  }
  return true;
}

// The largest scale over the ranks.
double global_scale(double mine) {
  double v = mine;
  g_mpi->all_reduce(TensorView::of(&v, 1), ReduceOp::kMax);
  return v;
}

TEST(NcclPowerSgd, MatchesTheMpiGpuRunBitForBitAndTheCpuWithinTolerance) {
  REQUIRE_NCCL();
  for (const int rank : {1, 4}) {
    PowerSgd::Options opt;
    opt.rank = rank;
    opt.start_iter = 2;
    opt.seed = 4;
    const int64_t steps = 8;
    const Steps nccl = run_steps(*g_nccl, true, opt, steps);
    const Steps mpi = run_steps(*g_mpi, true, opt, steps);
    const Steps cpu = run_steps(*g_mpi, false, opt, steps);
    for (int64_t s = 0; s < steps; ++s) {
      for (size_t t = 0; t < kTensors.size(); ++t) {
        const auto us = static_cast<size_t>(s);
        const std::string at = "rank " + std::to_string(rank) + " step " + std::to_string(s) +
                               " tensor " + std::to_string(t) + " on rank " +
                               std::to_string(g_mpi->rank());
        EXPECT_TRUE(same_bits(nccl.out[us][t], mpi.out[us][t]))
            << at << ": max diff " << max_abs_diff(nccl.out[us][t], mpi.out[us][t]);
        EXPECT_TRUE(same_on_every_rank(nccl.out[us][t])) << at;
        const bool dense =
            s < opt.start_iter || compressed_rank(kTensors[t].rows, kTensors[t].cols, opt) == 0;
        const double scale = global_scale(cpu.scale[us][t]);
        const double tol =
            dense ? 0.0
                  : tolerance(kTensors[t].rows, kTensors[t].cols, s - opt.start_iter + 1) * scale;
        EXPECT_LE(max_abs_diff(nccl.out[us][t], cpu.out[us][t]), tol) << at;
      }
    }
  }
}

TEST(NcclPowerSgd, RefusesANonFiniteGradientOnEveryRankAndChangesNothing) {
  REQUIRE_NCCL();
  const int device = g_nccl->device().index;
  const int bad = g_mpi->size() - 1;
  const int me = g_mpi->rank();
  PowerSgd::Options opt;
  opt.start_iter = 1;
  for (const int64_t bad_step : {int64_t{0}, int64_t{2}}) {  // dense, compressed
    PowerSgd algo(*g_nccl, opt);
    for (int64_t s = 0; s < bad_step; ++s) {
      const DeviceGrads d(make_grads(kTensors, 22, me, s), kTensors, device);
      algo.run(d.views(), s);
    }
    std::vector<Mat> g = make_grads(kTensors, 22, me, bad_step);
    if (me == bad) g[1][7] = std::numeric_limits<float>::infinity();
    const DeviceGrads d(g, kTensors, device);
    const StateDict before = algo.state_dict();
    try {
      algo.run(d.views(), bad_step);
      ADD_FAILURE() << "rank " << me << " did not throw at step " << bad_step;
    } catch (const NumericalError& e) {
      EXPECT_THAT(e.what(), HasSubstr("rank " + std::to_string(bad) + " tensor 1 (1024x64)"));
    }
    const std::vector<Mat> after = d.to_host();
    for (size_t t = 0; t < g.size(); ++t) EXPECT_TRUE(same_bits(after[t], g[t])) << t;
    if (bad_step > 0) {
      EXPECT_TRUE(algo.state_dict() == before) << "step " << bad_step;
    }
  }
}

TEST(NcclPowerSgd, RefusesHostViewsOnEveryRank) {
  REQUIRE_NCCL();
  PowerSgd::Options opt;
  opt.start_iter = 0;
  std::vector<Mat> g = make_grads(kTensors, 23, g_mpi->rank(), 0);
  PowerSgd algo(*g_nccl, opt);
  try {
    algo.run(host_views(g, kTensors), 0);
    ADD_FAILURE() << "rank " << g_mpi->rank() << " did not throw";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), HasSubstr("moves memory of cuda:"));
    EXPECT_THAT(e.what(), HasSubstr("but the gradients are on cpu"));
  }
}

}  // namespace
}  // namespace terse::psgd_test

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // MPI for the agreement on whether to run, the CPU reference and the final verdict.
  auto mpi = terse::make_communicator("mpi");
  terse::psgd_test::g_mpi = mpi.get();
  int visible = 0;
  if (cudaGetDeviceCount(&visible) != cudaSuccess) {
    visible = 0;
    cudaGetLastError();
  }
  const int local = terse::local_rank_count();
  int can_run = visible >= local && visible > 0 ? 1 : 0;
  mpi->all_reduce(terse::TensorView::of(&can_run, 1), terse::ReduceOp::kMin);
  std::unique_ptr<terse::Communicator> nccl;
  if (can_run) {
    nccl = terse::make_nccl_communicator();
    terse::psgd_test::g_nccl = nccl.get();
    // The communicator's GPU is this rank's current device for everything else.
    cudaSetDevice(nccl->device().index);
  } else {
    terse::psgd_test::g_skip_reason = "NCCL needs one GPU per rank: this rank sees " +
                                      std::to_string(visible) + " CUDA devices for " +
                                      std::to_string(local) +
                                      " ranks on its node (or another rank " + "has too few)";
  }
  if (mpi->rank() != 0) GTEST_FLAG_SET(brief, true);
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  mpi->all_reduce(terse::TensorView::of(&failed, 1), terse::ReduceOp::kMax);
  if (mpi->rank() == 0) {
    std::printf("multirank powersgd nccl: %d ranks, %s%s\n", mpi->size(),
                failed ? "FAILED on some rank" : "all passed",
                nccl ? "" : (" (skipped: " + terse::psgd_test::g_skip_reason + ")").c_str());
  }
  nccl.reset();
  mpi.reset();
  return failed;
}

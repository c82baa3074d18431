// 1-bit Adam, 0/1 Adam and 1-bit LAMB over the MPI backend with DataParallel: a least-squares
// problem whose data differ per rank (each rank's own optimum differs from the global one)
// converges close to the exact solution and to dense Adam's result, with every rank's parameters
// bit-identical. Run under mpiexec (CTest: multirank.onebit_adam).

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "terse/comm/communicator.h"
#include "terse/optim/optimizer.h"
#include "terse/train/data_parallel.h"
#include "terse/train/one_bit_adam.h"

namespace terse {
namespace {

Communicator* g_comm = nullptr;

constexpr int kDim = 32;
constexpr int kRows = 64;
constexpr int64_t kSteps = 2000;
constexpr int64_t kFreeze = 200;
constexpr double kLr = 0.05;

// Rank r's rows A (kRows x kDim) and targets b: rows scaled and targets shifted per rank.
struct Shard {
  std::vector<double> a, b;
};

Shard shard_of(int rank) {
  std::mt19937 gen(static_cast<unsigned>(17 + rank));
  std::normal_distribution<double> d(0.0, 1.0);
  Shard s;
  const double row_scale = 1.0 + 0.5 * rank;
  for (int i = 0; i < kRows * kDim; ++i) s.a.push_back(row_scale * d(gen));
  for (int i = 0; i < kRows; ++i) {
    double y = 0.3 * rank;
    for (int j = 0; j < kDim; ++j) y += s.a[i * kDim + j] * (0.1 * (j % 7) - 0.2);
    s.b.push_back(y + 0.5 * d(gen));
  }
  return s;
}

// f(x) = 1/W sum_r 1/(2 kRows) ||A_r x - b_r||^2 in double.
double loss(const std::vector<Shard>& shards, const std::vector<double>& x) {
  double f = 0;
  for (const auto& s : shards) {
    for (int i = 0; i < kRows; ++i) {
      double r = -s.b[i];
      for (int j = 0; j < kDim; ++j) r += s.a[i * kDim + j] * x[j];
      f += 0.5 * r * r / kRows;
    }
  }
  return f / static_cast<double>(shards.size());
}

// The exact minimiser: normal equations by Gaussian elimination with partial pivoting.
std::vector<double> solve(const std::vector<Shard>& shards) {
  std::vector<std::vector<double>> m(kDim, std::vector<double>(kDim + 1, 0.0));
  for (const auto& s : shards) {
    for (int i = 0; i < kRows; ++i) {
      for (int j = 0; j < kDim; ++j) {
        for (int k = 0; k < kDim; ++k) m[j][k] += s.a[i * kDim + j] * s.a[i * kDim + k];
        m[j][kDim] += s.a[i * kDim + j] * s.b[i];
      }
    }
  }
  for (int c = 0; c < kDim; ++c) {
    int piv = c;
    for (int r = c + 1; r < kDim; ++r) {
      if (std::fabs(m[r][c]) > std::fabs(m[piv][c])) piv = r;
    }
    std::swap(m[c], m[piv]);
    for (int r = 0; r < kDim; ++r) {
      if (r == c) continue;
      const double f = m[r][c] / m[c][c];
      for (int k = c; k <= kDim; ++k) m[r][k] -= f * m[c][k];
    }
  }
  std::vector<double> x(kDim);
  for (int j = 0; j < kDim; ++j) x[j] = m[j][kDim] / m[j][j];
  return x;
}

struct Result {
  std::vector<double> x;
  bool identical = false;  // every rank ended with the same parameters, bit for bit
  uint64_t compressed_bytes = 0, dense_bytes = 0;
};

// Trains x (split into two tensors of 20 and 12) with `spec` on this rank's shard; the lr
// decays linearly to 0. `onebit`: build OneBitAdam and let it switch DataParallel's exchange.
Result train(const std::string& spec, bool onebit) {
  Communicator& comm = *g_comm;
  const Shard s = shard_of(comm.rank());
  std::vector<float> w1(20, 0.0f), w2(12, 0.0f);
  std::vector<Param> params = {Param{TensorView::of(w1.data(), 20), TensorView{}, {20}, "w1"},
                               Param{TensorView::of(w2.data(), 12), TensorView{}, {12}, "w2"}};
  DataParallel dp(comm, params, 1.0);
  std::vector<ParamGroup> groups(1);
  groups[0].params = dp.params();
  std::unique_ptr<Optimizer> opt;
  CommunicatingOptimizer* comm_opt = nullptr;
  if (onebit) {
    auto o = make_communicating_optimizer(comm, OptimizerSpec::parse(spec), groups);
    comm_opt = o.get();
    opt = std::move(o);
  } else {
    opt = make_optimizer(OptimizerSpec::parse(spec), groups);
  }
  Result res;
  std::vector<double> x(kDim), g(kDim);
  for (int64_t t = 0; t < kSteps; ++t) {
    if (comm_opt != nullptr) dp.set_exchange_enabled(comm_opt->wants_averaged_gradients());
    for (int j = 0; j < kDim; ++j) x[j] = j < 20 ? w1[j] : w2[j - 20];
    std::fill(g.begin(), g.end(), 0.0);
    for (int i = 0; i < kRows; ++i) {
      double r = -s.b[i];
      for (int j = 0; j < kDim; ++j) r += s.a[i * kDim + j] * x[j];
      for (int j = 0; j < kDim; ++j) g[j] += r * s.a[i * kDim + j] / kRows;
    }
    for (size_t p = 0; p < 2; ++p) {
      float* gp = dp.params()[p].grad.as<float>();
      for (int64_t k = 0; k < dp.params()[p].grad.numel; ++k) {
        gp[k] = static_cast<float>(g[static_cast<size_t>(k) + (p == 0 ? 0 : 20)]);
      }
      dp.mark_ready(p);
    }
    const CommStats dense = dp.finish();
    opt->scale_lr(1.0 - static_cast<double>(t) / kSteps);
    opt->step();
    res.dense_bytes += dense.bytes_sent;
    if (comm_opt != nullptr) res.compressed_bytes += comm_opt->last_step_comm().bytes_sent;
  }
  for (int j = 0; j < kDim; ++j) res.x.push_back(j < 20 ? w1[j] : w2[j - 20]);
  // Every rank holds the same parameters, bit for bit.
  std::vector<float> mine(w1);
  mine.insert(mine.end(), w2.begin(), w2.end());
  std::vector<float> all(mine.size() * static_cast<size_t>(comm.size()));
  comm.all_gather(TensorView::of(mine.data(), kDim),
                  TensorView::of(all.data(), static_cast<int64_t>(all.size())));
  res.identical = true;
  for (size_t i = 0; i < all.size(); ++i) res.identical = res.identical && all[i] == mine[i % kDim];
  return res;
}

TEST(OneBitAdamMpi, LeastSquaresConvergesLikeAdam) {
  Communicator& comm = *g_comm;
  const int w = comm.size();
  std::vector<Shard> shards;
  for (int r = 0; r < w; ++r) shards.push_back(shard_of(r));
  const std::vector<double> x_ls = solve(shards);
  const double f_ls = loss(shards, x_ls);
  const std::vector<double> x0(kDim, 0.0);
  const double f0 = loss(shards, x0);

  const Result adam = train("adam:lr=" + std::to_string(kLr), false);
  const Result onebit = train(
      "onebit_adam:freeze_step=" + std::to_string(kFreeze) + ",lr=" + std::to_string(kLr), true);
  double dist_adam = 0, dist_onebit = 0, norm = 0, gap = 0;
  for (int j = 0; j < kDim; ++j) {
    dist_adam += (adam.x[j] - x_ls[j]) * (adam.x[j] - x_ls[j]);
    dist_onebit += (onebit.x[j] - x_ls[j]) * (onebit.x[j] - x_ls[j]);
    gap += (adam.x[j] - onebit.x[j]) * (adam.x[j] - onebit.x[j]);
    norm += x_ls[j] * x_ls[j];
  }
  const double f_adam = loss(shards, adam.x), f_onebit = loss(shards, onebit.x);
  if (comm.rank() == 0) {
    std::printf(
        "least squares, %d ranks, %d x %d per rank, %lld steps (freeze %lld): f0 %.6f, exact "
        "%.6f, adam %.6f, onebit_adam %.6f; |x-x*|/|x*|: adam %.2e, onebit %.2e; |adam-onebit|"
        "/|x*| %.2e; dense bytes of onebit run %llu (warm-up) + compressed %llu, adam %llu\n",
        w, kRows, kDim, static_cast<long long>(kSteps), static_cast<long long>(kFreeze), f0, f_ls,
        f_adam, f_onebit, std::sqrt(dist_adam / norm), std::sqrt(dist_onebit / norm),
        std::sqrt(gap / norm), static_cast<unsigned long long>(onebit.dense_bytes),
        static_cast<unsigned long long>(onebit.compressed_bytes),
        static_cast<unsigned long long>(adam.dense_bytes));
  }
  EXPECT_TRUE(adam.identical);
  EXPECT_TRUE(onebit.identical);
  EXPECT_LT(std::sqrt(dist_adam / norm), 1e-2);
  EXPECT_LT(std::sqrt(dist_onebit / norm), 1e-2);
  EXPECT_LT(f_onebit - f_ls, 1e-3 * (f0 - f_ls));
  // The compression phase sent 1 bit per element plus scales, not 32.
  EXPECT_GT(onebit.compressed_bytes, 0u);
  EXPECT_LT(onebit.dense_bytes, adam.dense_bytes / 5);
}

TEST(ZeroOneAdamMpi, LeastSquaresConvergesLikeAdam) {
  Communicator& comm = *g_comm;
  std::vector<Shard> shards;
  for (int r = 0; r < comm.size(); ++r) shards.push_back(shard_of(r));
  const std::vector<double> x_ls = solve(shards);
  const double f_ls = loss(shards, x_ls);
  const double f0 = loss(shards, std::vector<double>(kDim, 0.0));
  // Local steps from 200, sync interval doubling every 100 local steps up to 8 (2000 % 8 == 0:
  // the last step syncs).
  const Result zo =
      train("zero_one_adam:var_freeze_step=" + std::to_string(kFreeze) +
                ",local_step_scaler=100,local_step_clipper=8,lr=" + std::to_string(kLr),
            true);
  double dist = 0, norm = 0;
  for (int j = 0; j < kDim; ++j) {
    dist += (zo.x[j] - x_ls[j]) * (zo.x[j] - x_ls[j]);
    norm += x_ls[j] * x_ls[j];
  }
  const double f_zo = loss(shards, zo.x);
  if (comm.rank() == 0) {
    std::printf(
        "least squares, zero_one_adam: f %.6f (exact %.6f), |x-x*|/|x*| %.2e; dense bytes %llu, "
        "1-bit bytes %llu\n",
        f_zo, f_ls, std::sqrt(dist / norm), static_cast<unsigned long long>(zo.dense_bytes),
        static_cast<unsigned long long>(zo.compressed_bytes));
  }
  EXPECT_TRUE(zo.identical);
  // Looser than 1-bit Adam: local steps on data that differ per rank drift toward each rank's
  // own optimum (measured 3.1e-3, 1.25e-2, 3.3e-2 with local_step_clipper 1, 4, 8).
  EXPECT_LT(std::sqrt(dist / norm), 5e-2);
  EXPECT_LT(f_zo - f_ls, 2e-3 * (f0 - f_ls));
  EXPECT_GT(zo.compressed_bytes, 0u);
}

TEST(OneBitLambMpi, LeastSquaresConverges) {
  Communicator& comm = *g_comm;
  std::vector<Shard> shards;
  for (int r = 0; r < comm.size(); ++r) shards.push_back(shard_of(r));
  const std::vector<double> x_ls = solve(shards);
  const double f_ls = loss(shards, x_ls);
  const double f0 = loss(shards, std::vector<double>(kDim, 0.0));
  // The coefficient frozen at freeze_step must be near its final value: from x = 0 a warm-up
  // of 200 steps leaves it too small (measured |x-x*|/|x*| 0.39 after 2000 steps; 1000 warm-up
  // steps 4.2e-3; all 2000 dense, i.e. LAMB, 2.3e-8).
  const Result lamb = train("onebit_lamb:freeze_step=1000,lr=" + std::to_string(kLr), true);
  double dist = 0, norm = 0;
  for (int j = 0; j < kDim; ++j) {
    dist += (lamb.x[j] - x_ls[j]) * (lamb.x[j] - x_ls[j]);
    norm += x_ls[j] * x_ls[j];
  }
  const double f = loss(shards, lamb.x);
  if (comm.rank() == 0) {
    std::printf("least squares, onebit_lamb: f %.6f (exact %.6f), |x-x*|/|x*| %.2e\n", f, f_ls,
                std::sqrt(dist / norm));
  }
  EXPECT_TRUE(lamb.identical);
  EXPECT_LT(std::sqrt(dist / norm), 2e-2);
  EXPECT_LT(f - f_ls, 2e-3 * (f0 - f_ls));
}

}  // namespace
}  // namespace terse

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto comm = terse::make_communicator("mpi");
  terse::g_comm = comm.get();
  if (comm->rank() != 0) GTEST_FLAG_SET(brief, true);
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  comm->all_reduce(terse::TensorView::of(&failed, 1), terse::ReduceOp::kMax);
  if (comm->rank() == 0) {
    std::printf("multirank onebit_adam: %d ranks, %s\n", comm->size(),
                failed ? "FAILED on some rank" : "all passed");
  }
  comm.reset();
  return failed;
}

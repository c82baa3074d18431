#include <gtest/gtest.h>

#include <sys/stat.h>
#include <cmath>
#include <random>
#include <vector>

#include "ef21_simulation.h"
#include "logreg_problem.h"
#include "terse/core/error.h"

namespace terse {
namespace {

// n workers of m samples in dimension d, features N(0, s_i^2) with worker scales 1, 2, 3, ...
LogRegProblem synthetic(int n, int64_t m, int64_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<LogRegWorker> workers(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    LogRegWorker& w = workers[static_cast<size_t>(i)];
    w.m = m;
    w.feature_scale = 1.0 + i;
    for (int64_t j = 0; j < m * d; ++j)
      w.a.push_back(static_cast<float>(normal(rng) * w.feature_scale));
    for (int64_t j = 0; j < m; ++j) w.y.push_back(normal(rng) > 0 ? 1.0 : -1.0);
  }
  return LogRegProblem(d, 0.1, std::move(workers));
}

std::vector<double> gaussian(int64_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> x(static_cast<size_t>(d));
  for (double& v : x) v = normal(rng);
  return x;
}

TEST(Ef21LogReg, GradientMatchesCentralFiniteDifferences) {
  const LogRegProblem p = synthetic(3, 9, 7, 11);
  const std::vector<double> x = gaussian(7, 12);
  for (int i = 0; i < 3; ++i) {
    std::vector<double> g(7);
    const double f = p.loss_and_grad(i, x.data(), g.data());
    EXPECT_DOUBLE_EQ(f, p.loss_and_grad(i, x.data(), nullptr));
    for (int k = 0; k < 7; ++k) {
      const double h = 1e-5;
      std::vector<double> xp = x, xm = x;
      xp[static_cast<size_t>(k)] += h;
      xm[static_cast<size_t>(k)] -= h;
      const double fd =
          (p.loss_and_grad(i, xp.data(), nullptr) - p.loss_and_grad(i, xm.data(), nullptr)) /
          (2 * h);
      EXPECT_NEAR(g[static_cast<size_t>(k)], fd, 1e-8 * std::max(1.0, std::fabs(fd)))
          << "worker " << i << " coordinate " << k;
    }
  }
  // The full gradient is the mean of the workers' gradients.
  std::vector<double> full(7), gi(7);
  const double f = p.full_loss_and_grad(x.data(), full.data());
  double fsum = 0;
  std::vector<double> mean(7, 0.0);
  for (int i = 0; i < 3; ++i) {
    fsum += p.loss_and_grad(i, x.data(), gi.data());
    for (int k = 0; k < 7; ++k) mean[static_cast<size_t>(k)] += gi[static_cast<size_t>(k)] / 3;
  }
  EXPECT_NEAR(f, fsum / 3, 1e-14);
  for (int k = 0; k < 7; ++k)
    EXPECT_NEAR(full[static_cast<size_t>(k)], mean[static_cast<size_t>(k)], 1e-14);
}

TEST(Ef21LogReg, PowerIterationFindsLargestEigenvalue) {
  // [[2, 1], [1, 2]] has eigenvalues 3 and 1.
  EXPECT_NEAR(power_iteration_lambda_max({2, 1, 1, 2}, 2), 3.0, 1e-10);
  // diag(1, 5, 3) rotated into a dense matrix by a reflection stays at 5.
  const std::vector<double> m = {3, 0, 2, 0, 1, 0, 2, 0, 3};  // eigenvalues 5, 1, 1
  EXPECT_NEAR(power_iteration_lambda_max(m, 3), 5.0, 1e-9);
  EXPECT_THROW(power_iteration_lambda_max({1, 2, 3}, 2), InvalidArgument);
}

TEST(Ef21LogReg, SmoothnessBoundsTheCurvatureAlongRandomDirections) {
  const LogRegProblem p = synthetic(3, 20, 5, 21);
  for (int i = 0; i < 3; ++i) {
    const double li = p.smoothness(i);
    std::vector<double> gx(5), gy(5);
    for (uint64_t s = 0; s < 20; ++s) {
      const std::vector<double> x = gaussian(5, 100 + s), y = gaussian(5, 200 + s);
      p.loss_and_grad(i, x.data(), gx.data());
      p.loss_and_grad(i, y.data(), gy.data());
      double num = 0, den = 0;
      for (int k = 0; k < 5; ++k) {
        num += std::pow(gx[static_cast<size_t>(k)] - gy[static_cast<size_t>(k)], 2);
        den += std::pow(x[static_cast<size_t>(k)] - y[static_cast<size_t>(k)], 2);
      }
      EXPECT_LE(std::sqrt(num / den), li) << "worker " << i;
    }
  }
  // Worker scales 1, 2, 3 make the logistic part of L_i grow about like s_i^2.
  EXPECT_GT(p.smoothness(2), 4.0 * p.smoothness(0));
}

TEST(Ef21LogReg, Ef21WithKEqualDIsGradientDescent) {
  const int64_t d = 6;
  const LogRegProblem p = synthetic(4, 10, d, 31);
  const std::vector<double> x0 = gaussian(d, 32);
  RunConfig cfg;
  cfg.gamma = 0.5 / p.global_smoothness();
  cfg.iterations = 60;
  cfg.method = "gd";
  const RunResult gd = run_method(p, cfg, x0);
  cfg.method = "ef21";
  cfg.k = d;
  const RunResult ef21 = run_method(p, cfg, x0);
  cfg.k = 1;
  const RunResult ef21_k1 = run_method(p, cfg, x0);
  // Plain f64 gradient descent, outside terse.
  std::vector<double> x = x0, g(static_cast<size_t>(d));
  ASSERT_EQ(gd.points.size(), 61u);
  ASSERT_EQ(ef21.points.size(), 61u);
  for (int64_t t = 0; t <= 60; ++t) {
    const double f = p.full_loss_and_grad(x.data(), g.data());
    const auto& a = gd.points[static_cast<size_t>(t)];
    const auto& b = ef21.points[static_cast<size_t>(t)];
    EXPECT_EQ(a.iteration, t);
    // Identical up to f32 rounding of the sent gradients (a + (b - a) != b in floating point).
    EXPECT_NEAR(a.f, f, 1e-6 * std::fabs(f)) << "t=" << t;
    EXPECT_NEAR(b.f, f, 1e-6 * std::fabs(f)) << "t=" << t;
    EXPECT_NEAR(b.grad_norm_sq, a.grad_norm_sq, 1e-4 * a.grad_norm_sq + 1e-14) << "t=" << t;
    if (t == 60) break;
    for (int64_t k = 0; k < d; ++k)
      x[static_cast<size_t>(k)] -= cfg.gamma * g[static_cast<size_t>(k)];
  }
  for (int64_t k = 0; k < d; ++k) {
    EXPECT_NEAR(ef21.x[static_cast<size_t>(k)], x[static_cast<size_t>(k)], 1e-5);
    EXPECT_NEAR(gd.x[static_cast<size_t>(k)], x[static_cast<size_t>(k)], 1e-5);
  }
  // GD made real progress, and Top-1 EF21 (a different method) does not match it.
  EXPECT_LT(gd.final_grad_norm_sq, 0.1 * gd.points.front().grad_norm_sq);
  double gap = 0;
  for (int64_t k = 0; k < d; ++k)
    gap =
        std::max(gap, std::fabs(ef21_k1.x[static_cast<size_t>(k)] - gd.x[static_cast<size_t>(k)]));
  EXPECT_GT(gap, 1e-3);
}

TEST(Ef21LogReg, Ef21WWithEqualSmoothnessIsEf21) {
  const LogRegProblem p = synthetic(4, 10, 8, 41);
  const std::vector<double> x0 = gaussian(8, 42);
  RunConfig cfg;
  cfg.k = 2;
  cfg.gamma = 0.3 / p.global_smoothness();
  cfg.iterations = 40;
  cfg.method = "ef21";
  const RunResult a = run_method(p, cfg, x0);
  cfg.method = "ef21w";
  cfg.smoothness = {2.0, 2.0, 2.0, 2.0};
  const RunResult b = run_method(p, cfg, x0);
  EXPECT_EQ(a.x, b.x);
  // Unequal L_i change the weights, but Top-k is positively homogeneous (C(s v) = s C(v), s > 0):
  // with h_i = n w_i g_i, EF21-W's h_i follows EF21's g_i, so at the same step the iterates
  // agree up to f32 rounding. EF21-W differs from EF21 only through its larger theory step.
  cfg.smoothness = {1.0, 2.0, 3.0, 40.0};
  const RunResult c = run_method(p, cfg, x0);
  EXPECT_NE(a.x, c.x);
  for (size_t k = 0; k < a.x.size(); ++k) EXPECT_NEAR(a.x[k], c.x[k], 1e-5) << "k=" << k;
  // A real change of the method (no error feedback) does move the iterates.
  cfg.method = "topk";
  const RunResult e = run_method(p, cfg, x0);
  double gap = 0;
  for (size_t k = 0; k < a.x.size(); ++k) gap = std::max(gap, std::fabs(a.x[k] - e.x[k]));
  EXPECT_GT(gap, 1e-3);
}

TEST(Ef21LogReg, BitsAreMeasuredPayloadBytes) {
  const int64_t d = 6;
  const LogRegProblem p = synthetic(2, 5, d, 51);
  const std::vector<double> x0 = gaussian(d, 52);
  RunConfig cfg;
  cfg.gamma = 0.1;
  cfg.iterations = 3;
  cfg.method = "gd";
  const RunResult gd = run_method(p, cfg, x0);
  // Header 32 + seed 8 + 4 bytes per value, no indices.
  EXPECT_DOUBLE_EQ(gd.bits_at_end, 3 * 8.0 * (32 + 8 + 4 * d));
  EXPECT_DOUBLE_EQ(gd.points.back().bits_ideal, 3 * 32.0 * d);
  cfg.method = "ef21";
  cfg.k = 1;
  const RunResult ef = run_method(p, cfg, x0);
  // Header 32 + one f32 value + one 1-byte varint index (d < 128).
  EXPECT_DOUBLE_EQ(ef.bits_at_end, 3 * 8.0 * (32 + 4 + 1));
  EXPECT_DOUBLE_EQ(ef.points.back().bits_ideal, 3 * 64.0);
}

TEST(Ef21LogReg, RejectsBadMethodAndK) {
  EXPECT_THROW(method_compressor_spec("ef99", 1, 10), InvalidArgument);
  EXPECT_THROW(method_compressor_spec("ef21", 0, 10), InvalidArgument);
  EXPECT_THROW(method_compressor_spec("ef21", 11, 10), InvalidArgument);
  for (int64_t k : {1, 2, 4, 196, 197})
    EXPECT_NO_THROW(method_compressor_spec("ef21", k, 197)) << "k=" << k;
}

TEST(Ef21LogReg, FashionSplitIsHeterogeneous) {
  FashionSplitOptions o;
  struct stat st;
  if (::stat((o.dir + "/train-images-idx3-ubyte.gz").c_str(), &st) != 0)
    GTEST_SKIP() << "Fashion-MNIST not installed at " << o.dir;
  o.workers = 5;
  o.per_worker = 40;
  const LogRegProblem p = make_fashion_problem(o);
  EXPECT_EQ(p.dim(), 197);
  EXPECT_EQ(p.worker(0).positives, 0);
  EXPECT_EQ(p.worker(2).positives, 20);
  EXPECT_EQ(p.worker(4).positives, 40);
  double lo = 1e300, hi = 0;
  for (int i = 0; i < 5; ++i) {
    const double li = p.smoothness(i);
    lo = std::min(lo, li);
    hi = std::max(hi, li);
    // The bias column equals the worker's scale.
    EXPECT_FLOAT_EQ(p.worker(i).a[196], static_cast<float>(p.worker(i).feature_scale));
  }
  EXPECT_GT(hi / lo, 10.0);
  EXPECT_LE(p.global_smoothness(), hi);
}

}  // namespace
}  // namespace terse

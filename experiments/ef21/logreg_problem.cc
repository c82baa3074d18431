#include "logreg_problem.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "terse/core/check.h"
#include "terse/core/error.h"
#include "terse/data/fashion_mnist.h"

namespace terse {
namespace {

// log(1 + exp(z)) without overflow.
double softplus(double z) {
  return z > 0.0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
}

// 1 / (1 + exp(-z)) without overflow.
double sigmoid(double z) {
  if (z >= 0.0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

// A_i^T A_i / (4 m_i), d x d row-major.
std::vector<double> scaled_gram(const LogRegWorker& w, int64_t d) {
  std::vector<double> g(static_cast<size_t>(d * d), 0.0);
  std::vector<double> row(static_cast<size_t>(d));
  for (int64_t j = 0; j < w.m; ++j) {
    const float* a = w.a.data() + j * d;
    for (int64_t k = 0; k < d; ++k) row[static_cast<size_t>(k)] = a[k];
    for (int64_t p = 0; p < d; ++p) {
      const double ap = row[static_cast<size_t>(p)];
      if (ap == 0.0) continue;
      double* gp = g.data() + p * d;
      for (int64_t q = 0; q < d; ++q) gp[q] += ap * row[static_cast<size_t>(q)];
    }
  }
  const double s = 1.0 / (4.0 * static_cast<double>(w.m));
  for (double& v : g) v *= s;
  return g;
}

}  // namespace

LogRegProblem::LogRegProblem(int64_t d, double lambda, std::vector<LogRegWorker> workers)
    : d_(d), lambda_(lambda), workers_(std::move(workers)) {
  TERSE_CHECK(d_ > 0, InvalidArgument, "logreg: dimension is ", d_, "; it must be > 0");
  TERSE_CHECK(std::isfinite(lambda_) && lambda_ >= 0.0, InvalidArgument, "logreg: lambda is ",
              lambda_, "; it must be finite and >= 0");
  TERSE_CHECK(!workers_.empty(), InvalidArgument, "logreg: no workers; give at least one");
  for (size_t i = 0; i < workers_.size(); ++i) {
    const LogRegWorker& w = workers_[i];
    TERSE_CHECK(w.m > 0, InvalidArgument, "logreg: worker ", i, " has ", w.m,
                " samples; every worker needs at least one");
    TERSE_CHECK(
        w.a.size() == static_cast<size_t>(w.m * d_) && w.y.size() == static_cast<size_t>(w.m),
        InvalidArgument, "logreg: worker ", i, " has ", w.a.size(), " feature values and ",
        w.y.size(), " labels for m = ", w.m, ", d = ", d_, "; expected m*d and m");
    for (double yj : w.y)
      TERSE_CHECK(yj == 1.0 || yj == -1.0, InvalidArgument, "logreg: worker ", i, " has label ", yj,
                  "; labels must be +1 or -1");
  }
}

const LogRegWorker& LogRegProblem::worker(int i) const {
  TERSE_CHECK(i >= 0 && i < num_workers(), InvalidArgument, "logreg: worker ", i,
              " is out of range [0, ", num_workers(), ")");
  return workers_[static_cast<size_t>(i)];
}

double LogRegProblem::loss_and_grad(int i, const double* x, double* grad) const {
  const LogRegWorker& w = worker(i);
  const int64_t d = d_;
  if (grad != nullptr) std::fill(grad, grad + d, 0.0);
  double loss = 0.0;
  for (int64_t j = 0; j < w.m; ++j) {
    const float* a = w.a.data() + j * d;
    // Four partial sums: independent chains the compiler can pipeline (no -ffast-math here).
    double z0 = 0.0, z1 = 0.0, z2 = 0.0, z3 = 0.0;
    int64_t k = 0;
    for (; k + 4 <= d; k += 4) {
      z0 += static_cast<double>(a[k]) * x[k];
      z1 += static_cast<double>(a[k + 1]) * x[k + 1];
      z2 += static_cast<double>(a[k + 2]) * x[k + 2];
      z3 += static_cast<double>(a[k + 3]) * x[k + 3];
    }
    for (; k < d; ++k) z0 += static_cast<double>(a[k]) * x[k];
    const double z = (z0 + z1) + (z2 + z3);
    const double yz = w.y[static_cast<size_t>(j)] * z;
    loss += softplus(-yz);
    if (grad != nullptr) {
      // d/dx log(1 + exp(-y a^T x)) = -y sigma(-y a^T x) a
      const double c = -w.y[static_cast<size_t>(j)] * sigmoid(-yz);
      for (int64_t q = 0; q < d; ++q) grad[q] += c * static_cast<double>(a[q]);
    }
  }
  const double inv_m = 1.0 / static_cast<double>(w.m);
  loss *= inv_m;
  for (int64_t k = 0; k < d; ++k) {
    const double xk = x[k];
    const double q = 1.0 + xk * xk;
    loss += lambda_ * xk * xk / q;
    if (grad != nullptr) grad[k] = grad[k] * inv_m + lambda_ * 2.0 * xk / (q * q);
  }
  return loss;
}

double LogRegProblem::full_loss_and_grad(const double* x, double* grad) const {
  const size_t d = static_cast<size_t>(d_);
  std::vector<double> gi(d);
  if (grad != nullptr) std::fill(grad, grad + d, 0.0);
  double loss = 0.0;
  for (int i = 0; i < num_workers(); ++i) {
    loss += loss_and_grad(i, x, grad != nullptr ? gi.data() : nullptr);
    if (grad != nullptr)
      for (size_t k = 0; k < d; ++k) grad[k] += gi[k];
  }
  const double inv_n = 1.0 / num_workers();
  if (grad != nullptr)
    for (size_t k = 0; k < d; ++k) grad[k] *= inv_n;
  return loss * inv_n;
}

double LogRegProblem::smoothness(int i) const {
  return power_iteration_lambda_max(scaled_gram(worker(i), d_), d_) + 2.0 * lambda_;
}

double LogRegProblem::global_smoothness() const {
  const int64_t m0 = workers_.front().m;
  for (const LogRegWorker& w : workers_)
    TERSE_CHECK(w.m == m0, InvalidArgument, "logreg: global L needs equal m_i but worker sizes ",
                m0, " and ", w.m, " differ; give every worker the same number of samples");
  // A^T A / (4 m) with m = n m0 is the mean of the workers' A_i^T A_i / (4 m0).
  std::vector<double> total(static_cast<size_t>(d_ * d_), 0.0);
  for (const LogRegWorker& w : workers_) {
    const std::vector<double> g = scaled_gram(w, d_);
    for (size_t k = 0; k < g.size(); ++k) total[k] += g[k];
  }
  for (double& v : total) v /= static_cast<double>(workers_.size());
  return power_iteration_lambda_max(total, d_) + 2.0 * lambda_;
}

double power_iteration_lambda_max(const std::vector<double>& matrix, int64_t d, double rel_tol,
                                  int max_iter) {
  TERSE_CHECK(d > 0 && matrix.size() == static_cast<size_t>(d * d), InvalidArgument,
              "power iteration: matrix has ", matrix.size(), " entries for d = ", d,
              "; expected d*d");
  const size_t n = static_cast<size_t>(d);
  std::vector<double> v(n, 1.0 / std::sqrt(static_cast<double>(n))), w(n);
  double rayleigh = 0.0;
  for (int it = 0; it < max_iter; ++it) {
    for (size_t p = 0; p < n; ++p) {
      double s = 0.0;
      for (size_t q = 0; q < n; ++q) s += matrix[p * n + q] * v[q];
      w[p] = s;
    }
    double vw = 0.0, ww = 0.0;
    for (size_t p = 0; p < n; ++p) {
      vw += v[p] * w[p];
      ww += w[p] * w[p];
    }
    if (ww == 0.0) return 0.0;  // the zero matrix
    const double norm = std::sqrt(ww);
    for (size_t p = 0; p < n; ++p) v[p] = w[p] / norm;
    if (it > 0 && std::fabs(vw - rayleigh) <= rel_tol * std::fabs(vw)) return vw;
    rayleigh = vw;
  }
  TERSE_THROW(NumericalError, "power iteration: lambda_max did not converge to relative ", rel_tol,
              " in ", max_iter, " iterations (last estimate ", rayleigh,
              "); raise max_iter or loosen rel_tol");
}

LogRegProblem make_fashion_problem(const FashionSplitOptions& o) {
  TERSE_CHECK(o.workers >= 1, InvalidArgument, "fashion split: workers is ", o.workers,
              "; it must be >= 1");
  TERSE_CHECK(o.per_worker >= 1, InvalidArgument, "fashion split: per_worker is ", o.per_worker,
              "; it must be >= 1");
  TERSE_CHECK(o.class_neg != o.class_pos && o.class_neg >= 0 && o.class_neg < 10 &&
                  o.class_pos >= 0 && o.class_pos < 10,
              InvalidArgument, "fashion split: classes ", o.class_neg, " and ", o.class_pos,
              " must be two different labels in 0..9");
  TERSE_CHECK(std::isfinite(o.scale_max) && o.scale_max >= 1.0, InvalidArgument,
              "fashion split: scale_max is ", o.scale_max, "; it must be >= 1");
  const FashionMnistSplit train =
      FashionMnist::load_split(o.dir, "train", FashionMnist::kTrainCount);
  std::vector<int64_t> neg, pos;
  for (int64_t j = 0; j < train.count; ++j) {
    const int label = train.labels[static_cast<size_t>(j)];
    if (label == o.class_neg) neg.push_back(j);
    if (label == o.class_pos) pos.push_back(j);
  }
  const int n = o.workers;
  const int64_t m = o.per_worker;
  std::vector<int> positives(static_cast<size_t>(n));
  int64_t need_pos = 0;
  for (int i = 0; i < n; ++i) {
    const double frac = n == 1 ? 0.5 : static_cast<double>(i) / (n - 1);
    positives[static_cast<size_t>(i)] =
        static_cast<int>(std::lround(frac * static_cast<double>(m)));
    need_pos += positives[static_cast<size_t>(i)];
  }
  const int64_t need_neg = int64_t{n} * m - need_pos;
  TERSE_CHECK(
      need_pos <= static_cast<int64_t>(pos.size()) && need_neg <= static_cast<int64_t>(neg.size()),
      InvalidArgument, "fashion split: the split needs ", need_pos, " images of class ",
      o.class_pos, " and ", need_neg, " of class ", o.class_neg, " but the training set has ",
      pos.size(), " and ", neg.size(), "; lower workers or per_worker");

  const int side = o.pool ? FashionMnist::kRows / 2 : FashionMnist::kRows;
  const int64_t d = int64_t{side} * side + 1;  // + bias column
  // Scales: s_j = scale_max^(j/(n-1)) assigned through i -> 7i mod n (identity when 7 | n).
  const bool permute = n % 7 != 0;
  std::vector<LogRegWorker> workers(static_cast<size_t>(n));
  size_t next_pos = 0, next_neg = 0;
  for (int i = 0; i < n; ++i) {
    LogRegWorker& w = workers[static_cast<size_t>(i)];
    const int j = permute ? (7 * i) % n : i;
    w.feature_scale = n == 1 ? 1.0 : std::pow(o.scale_max, static_cast<double>(j) / (n - 1));
    w.m = m;
    w.positives = positives[static_cast<size_t>(i)];
    w.a.resize(static_cast<size_t>(m * d));
    w.y.resize(static_cast<size_t>(m));
    for (int64_t r = 0; r < m; ++r) {
      const bool is_pos = r < w.positives;
      const int64_t src = is_pos ? pos[next_pos++] : neg[next_neg++];
      w.y[static_cast<size_t>(r)] = is_pos ? 1.0 : -1.0;
      const uint8_t* img = train.image(src);
      float* row = w.a.data() + r * d;
      for (int p = 0; p < side; ++p) {
        for (int q = 0; q < side; ++q) {
          double v;
          if (o.pool) {
            const int r0 = 2 * p, c0 = 2 * q, cols = FashionMnist::kCols;
            v = (img[r0 * cols + c0] + img[r0 * cols + c0 + 1] + img[(r0 + 1) * cols + c0] +
                 img[(r0 + 1) * cols + c0 + 1]) /
                (4.0 * 255.0);
          } else {
            v = img[p * FashionMnist::kCols + q] / 255.0;
          }
          row[p * side + q] = static_cast<float>(v * w.feature_scale);
        }
      }
      row[d - 1] = static_cast<float>(w.feature_scale);
    }
  }
  return LogRegProblem(d, o.lambda, std::move(workers));
}

}  // namespace terse

#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace terse {

// Logistic regression with the nonconvex regulariser of the EF21 experiments (Richtárik,
// Sokolov, Fatkhullin, NeurIPS 2021; EF21-W: Richtárik, Gasanov, Burlachenko, ICLR 2024):
//   f_i(x) = mean_j log(1 + exp(-y_j a_j^T x)) + lambda * sum_k x_k^2 / (1 + x_k^2),
//   f(x)   = mean_i f_i(x),
//   L_i    = lambda_max(A_i^T A_i / (4 m_i)) + 2 lambda   (logistic Hessian <= A^T A / (4m); the
//            regulariser's second derivative 2(1 - 3x^2)/(1 + x^2)^3 is at most 2).
// Features are stored as f32 (they are pixel averages); all arithmetic is f64.
struct LogRegWorker {
  int64_t m = 0;          // samples
  std::vector<float> a;   // m x d, row-major
  std::vector<double> y;  // labels, +1 or -1
  double feature_scale = 1.0;
  int positives = 0;  // samples with y = +1 (the class mix)
};

class LogRegProblem {
 public:
  LogRegProblem(int64_t d, double lambda, std::vector<LogRegWorker> workers);

  int64_t dim() const { return d_; }
  double lambda() const { return lambda_; }
  int num_workers() const { return static_cast<int>(workers_.size()); }
  const LogRegWorker& worker(int i) const;

  // f_i(x); when grad is not null also writes grad f_i(x) (d entries). One pass over A_i.
  double loss_and_grad(int i, const double* x, double* grad) const;
  // f(x) = mean_i f_i(x) and, when grad is not null, its gradient.
  double full_loss_and_grad(const double* x, double* grad) const;

  // L_i = lambda_max(A_i^T A_i / (4 m_i)) + 2 lambda by power iteration.
  double smoothness(int i) const;
  // L = lambda_max(A^T A / (4 m)) + 2 lambda of the stacked data (needs equal m_i, since f is
  // then the mean over all samples).
  double global_smoothness() const;

 private:
  int64_t d_;
  double lambda_;
  std::vector<LogRegWorker> workers_;
};

// lambda_max of a symmetric positive semidefinite d x d matrix (row-major) by power iteration
// from the all-ones vector; stops when the Rayleigh quotient changes by < rel_tol (relative).
// Throws NumericalError when it has not converged after max_iter iterations.
double power_iteration_lambda_max(const std::vector<double>& matrix, int64_t d,
                                  double rel_tol = 1e-12, int max_iter = 100000);

// How the Fashion-MNIST problem is built (docs/ef21.md, "Data and split").
struct FashionSplitOptions {
  std::string dir = "/usr/share/datasets/fashion-mnist";
  int class_neg = 0;  // label -1 (0: T-shirt/top)
  int class_pos = 6;  // label +1 (6: Shirt)
  int workers = 20;
  int64_t per_worker = 250;  // m_i, equal for every worker
  bool pool = true;          // 2x2 average pooling: 196 features (else 784), plus a bias 1
  double scale_max = 20.0;   // worker feature scales s_i = scale_max^(j / (n - 1)), j permuted
  double lambda = 0.1;
};

// Builds the heterogeneous split of two Fashion-MNIST training classes: pixels scaled to [0, 1],
// worker i gets round(m * i / (n - 1)) samples of class_pos (so the class mix runs from all
// class_neg to all class_pos) and its features (bias included) multiplied by s_i, with the
// scales assigned through the permutation i -> (7 i) mod n so the scale is not the class mix.
LogRegProblem make_fashion_problem(const FashionSplitOptions& options);

}  // namespace terse

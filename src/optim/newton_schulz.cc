#include "terse/optim/newton_schulz.h"

#include <cblas.h>

#include <climits>
#include <cmath>
#include <utility>

#include "newton_schulz_steps.h"
#include "terse/core/check.h"
#include "terse/kernels/cpu_threads.h"

// OpenBLAS's own thread pool defaults to every core and spins while it waits; with several ranks
// per machine that oversubscribes it many times over (a 4-rank CNN step went from 0.03 s to
// seconds). When the BLAS is OpenBLAS, its thread count follows terse's cpu_threads(), like the
// element-wise kernels; another BLAS does not define the symbol and keeps its own setting.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace terse {
namespace {

using ns_steps::bf16_axpy;
using ns_steps::bf16_round;

void round_all(float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) v[i] = bf16_round(v[i]);
}

}  // namespace

void NewtonSchulz::run(float* x, int64_t batch, int64_t rows, int64_t cols,
                       const NewtonSchulzOptions& o) {
  if (openblas_set_num_threads != nullptr) openblas_set_num_threads(cpu_threads());
  TERSE_CHECK(batch >= 0 && rows >= 0 && cols >= 0, InvalidArgument,
              "newton_schulz: batch, rows and cols must be >= 0, got ", batch, ", ", rows, ", ",
              cols);
  TERSE_CHECK(o.steps >= 0, InvalidArgument, "newton_schulz: steps must be >= 0, got ", o.steps);
  for (int64_t k = 0; k < batch; ++k) run_one(x + k * rows * cols, rows, cols, o);
}

void NewtonSchulz::run_one(float* x, int64_t rows, int64_t cols, const NewtonSchulzOptions& o) {
  if (rows == 0 || cols == 0) return;
  // Work on the wide orientation (m <= n) so the Gram matrix A is m x m.
  const bool transposed = rows > cols;
  const int64_t m = transposed ? cols : rows;
  const int64_t n = transposed ? rows : cols;
  x_.resize(static_cast<size_t>(m * n));
  y_.resize(static_cast<size_t>(m * n));
  a_.resize(static_cast<size_t>(m * m));
  b_.resize(static_cast<size_t>(m * m));
  float* X = x_.data();
  float* Y = y_.data();
  float* A = a_.data();
  float* B = b_.data();
  if (transposed) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) X[c * n + r] = x[r * cols + c];
    }
  } else {
    for (int64_t i = 0; i < m * n; ++i) X[i] = x[i];
  }
  const int64_t size = m * n;
  if (o.bf16) round_all(X, size);
  double sum_sq = 0;  // torch reduces in a wider type than bf16 too
  for (int64_t i = 0; i < size; ++i) sum_sq += static_cast<double>(X[i]) * X[i];
  const float den = ns_steps::divisor(static_cast<float>(std::sqrt(sum_sq)), o.eps, o.bf16);
  for (int64_t i = 0; i < size; ++i) X[i] = ns_steps::normalized(X[i], den, o.bf16);
  // CBLAS takes int dimensions (OpenBLAS's blasint is int unless built ILP64).
  TERSE_CHECK(n <= INT_MAX, InvalidArgument, "newton_schulz: a ", rows, " x ", cols,
              " matrix has a side over the ", INT_MAX, " that CBLAS can index; split it");
  const auto M = static_cast<int>(m);
  const auto N = static_cast<int>(n);
  for (int s = 0; s < o.steps; ++s) {
    // A = X X^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, M, N, 1.0f, X, N, X, N, 0.0f, A, M);
    if (o.bf16) {
      // The reference computes b*A + (c*A) @ A (Python's * and @ bind left to right) and then
      // a*X + B @ X, rounding every intermediate to bf16.
      round_all(A, m * m);
      for (int64_t i = 0; i < m * m; ++i) B[i] = bf16_round(o.c * A[i]);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, M, M, 1.0f, B, M, A, M, 0.0f, Y, M);
      for (int64_t i = 0; i < m * m; ++i) B[i] = bf16_axpy(o.b, A[i], Y[i]);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, M, 1.0f, B, M, X, N, 0.0f, Y, N);
      for (int64_t i = 0; i < size; ++i) X[i] = bf16_axpy(o.a, X[i], Y[i]);
    } else {
      // B = c A A + b A;  Y = B X + a X
      for (int64_t i = 0; i < m * m; ++i) B[i] = A[i];
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, M, M, o.c, A, M, A, M, o.b, B, M);
      for (int64_t i = 0; i < size; ++i) Y[i] = X[i];
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, M, 1.0f, B, M, X, N, o.a, Y, N);
      std::swap(X, Y);
    }
  }
  if (transposed) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) x[r * cols + c] = X[c * n + r];
    }
  } else {
    for (int64_t i = 0; i < size; ++i) x[i] = X[i];
  }
}

}  // namespace terse

// PowerSgd on threads-as-ranks (1 to 4 ranks): against a single-process reference written from
// the equations, exact recovery of low-rank matrices, error feedback, the dense warm-up, the
// state_dict round trip, the byte report and every documented error.

#include "terse/comm/algorithms/power_sgd.h"
#include "rank_outcomes.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "terse/comm/local_communicator.h"
#include "terse/core/philox.h"
#include "terse/kernels/cpu_threads.h"

namespace terse {
namespace {

using ::testing::HasSubstr;
using Mat = std::vector<float>;

struct Shape {
  int64_t rows, cols;
};

// A rows x cols matrix with entries uniform in [-1, 1), a function of (salt, rank, step, t).
Mat random_matrix(Shape s, uint64_t salt, int rank, int64_t step, size_t t) {
  PhiloxStream rng(salt * 1000003u + static_cast<uint64_t>(step) * 131u + t,
                   static_cast<uint64_t>(rank));
  Mat m(static_cast<size_t>(s.rows * s.cols));
  for (float& x : m) x = 2.0f * rng.uniform() - 1.0f;
  return m;
}

std::vector<MatrixView> views(std::vector<Mat>& ms, const std::vector<Shape>& shapes) {
  std::vector<MatrixView> v;
  for (size_t t = 0; t < ms.size(); ++t)
    v.push_back({ms[t].data(), shapes[t].rows, shapes[t].cols});
  return v;
}

// ---- The reference: the equations of power_sgd.h, one process holding every rank's data. ----

// Modified Gram-Schmidt over the columns of a row-major n x r matrix: col /= (||col|| + eps),
// then remove col's component from the later columns.
void gram_schmidt(Mat& a, int64_t n, int64_t r, double eps) {
  for (int64_t i = 0; i < r; ++i) {
    double ss = 0;
    for (int64_t k = 0; k < n; ++k) ss += double{a[k * r + i]} * a[k * r + i];
    const float norm = static_cast<float>(std::sqrt(ss));
    const float denom = eps == 0 ? norm : norm + static_cast<float>(eps);
    for (int64_t k = 0; k < n; ++k) a[k * r + i] /= denom;
    for (int64_t j = i + 1; j < r; ++j) {
      double dot = 0;
      for (int64_t k = 0; k < n; ++k) dot += double{a[k * r + i]} * a[k * r + j];
      for (int64_t k = 0; k < n; ++k) a[k * r + j] -= static_cast<float>(dot) * a[k * r + i];
    }
  }
}

struct Reference {
  PowerSgd::Options opt;
  std::vector<Shape> shapes;
  int world = 1;
  std::vector<Mat> q;                   // per tensor
  std::vector<std::vector<Mat>> error;  // [rank][tensor]

  int64_t rank_of(Shape s) const {
    const int64_t r = std::min({s.rows, s.cols, static_cast<int64_t>(opt.rank)});
    if (r <= 0) return 0;
    return double(s.rows + s.cols) * double(r) * opt.min_compression_rate <
                   double(s.rows) * double(s.cols)
               ? r
               : 0;
  }

  // grads[rank][tensor] in; the result every rank must hold out.
  std::vector<Mat> step(const std::vector<std::vector<Mat>>& grads, int64_t step_index) {
    const size_t nt = shapes.size();
    if (q.empty()) {
      q.resize(nt);
      error.assign(static_cast<size_t>(world), std::vector<Mat>(nt));
    }
    bool any = false;
    for (const Shape& s : shapes) any = any || rank_of(s) > 0;
    const bool dense_step = step_index < opt.start_iter || !any;
    std::vector<Mat> out(nt);
    for (size_t t = 0; t < nt; ++t) {
      const Shape s = shapes[t];
      const int64_t n = s.rows, m = s.cols, r = rank_of(s);
      if (dense_step || r == 0) {
        Mat sum(static_cast<size_t>(n * m), 0.0f);
        for (int k = 0; k < world; ++k) {
          for (size_t j = 0; j < sum.size(); ++j) sum[j] += grads[static_cast<size_t>(k)][t][j];
        }
        for (float& x : sum) x /= static_cast<float>(world);
        out[t] = sum;
        continue;
      }
      // M_k = G_k + e_k
      std::vector<Mat> mk(static_cast<size_t>(world));
      for (int k = 0; k < world; ++k) {
        mk[static_cast<size_t>(k)] = grads[static_cast<size_t>(k)][t];
        Mat& e = error[static_cast<size_t>(k)][t];
        if (opt.error_feedback && !e.empty()) {
          for (size_t j = 0; j < e.size(); ++j) mk[static_cast<size_t>(k)][j] += e[j];
        }
      }
      Mat qm(static_cast<size_t>(m * r));
      if (opt.warm_start && !q[t].empty()) {
        qm = q[t];
      } else {
        power_sgd_random_q(opt.seed, t, opt.warm_start ? -1 : step_index, qm.data(), m * r);
      }
      gram_schmidt(qm, m, r, opt.orthogonalization_epsilon);
      // P = sum_k M_k Q (each rank's P rounded to f32, summed in rank order)
      Mat p(static_cast<size_t>(n * r), 0.0f);
      for (int k = 0; k < world; ++k) {
        const Mat& a = mk[static_cast<size_t>(k)];
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t c = 0; c < r; ++c) {
            double acc = 0;
            for (int64_t j = 0; j < m; ++j) acc += double{a[i * m + j]} * qm[j * r + c];
            p[i * r + c] += static_cast<float>(acc);
          }
        }
      }
      gram_schmidt(p, n, r, opt.orthogonalization_epsilon);
      // Q = (sum_k M_k^T P) / W
      Mat qn(static_cast<size_t>(m * r), 0.0f);
      for (int k = 0; k < world; ++k) {
        const Mat& a = mk[static_cast<size_t>(k)];
        for (int64_t j = 0; j < m; ++j) {
          for (int64_t c = 0; c < r; ++c) {
            double acc = 0;
            for (int64_t i = 0; i < n; ++i) acc += double{a[i * m + j]} * p[i * r + c];
            qn[j * r + c] += static_cast<float>(acc);
          }
        }
      }
      for (float& x : qn) x /= static_cast<float>(world);
      // M_hat = P Q^T; e_k = M_k - M_hat
      Mat mh(static_cast<size_t>(n * m));
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < m; ++j) {
          double acc = 0;
          for (int64_t c = 0; c < r; ++c) acc += double{p[i * r + c]} * qn[j * r + c];
          mh[i * m + j] = static_cast<float>(acc);
        }
      }
      if (opt.error_feedback) {
        for (int k = 0; k < world; ++k) {
          Mat e = mk[static_cast<size_t>(k)];
          for (size_t j = 0; j < e.size(); ++j) e[j] -= mh[j];
          error[static_cast<size_t>(k)][t] = e;
        }
      }
      if (opt.warm_start) q[t] = qn;
      out[t] = mh;
    }
    return out;
  }
};

// Largest |a - b| / max(1, |b|).
double max_rel_diff(const Mat& a, const Mat& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::abs(double{a[i]} - b[i]) / std::max(1.0, std::abs(double{b[i]}));
    worst = std::max(worst, std::isnan(d) ? std::numeric_limits<double>::infinity() : d);
  }
  return worst;
}

bool same_bits(const Mat& a, const Mat& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

double frob(const Mat& a) {
  double s = 0;
  for (const float x : a) s += double{x} * x;
  return std::sqrt(s);
}

using test_support::Outcome;
using test_support::run_each;

// Runs `steps` steps of PowerSgd on `world` thread-ranks with random_matrix inputs and checks
// every rank's output, every step, against the reference.
void check_against_reference(int world, const std::vector<Shape>& shapes, PowerSgd::Options opt,
                             int64_t steps, uint64_t salt) {
  Reference ref{opt, shapes, world, {}, {}};
  std::vector<std::vector<Mat>> want(static_cast<size_t>(steps));
  for (int64_t s = 0; s < steps; ++s) {
    std::vector<std::vector<Mat>> grads(static_cast<size_t>(world));
    for (int k = 0; k < world; ++k) {
      for (size_t t = 0; t < shapes.size(); ++t) {
        grads[static_cast<size_t>(k)].push_back(random_matrix(shapes[t], salt, k, s, t));
      }
    }
    want[static_cast<size_t>(s)] = ref.step(grads, s);
  }
  std::mutex mu;
  std::vector<std::vector<std::vector<Mat>>> got(static_cast<size_t>(world));
  run_local_ranks(world, [&](Communicator& comm) {
    PowerSgd algo(comm, opt);
    std::vector<std::vector<Mat>> mine;
    for (int64_t s = 0; s < steps; ++s) {
      std::vector<Mat> g;
      for (size_t t = 0; t < shapes.size(); ++t) {
        g.push_back(random_matrix(shapes[t], salt, comm.rank(), s, t));
      }
      const PowerSgdReport rep = algo.run(views(g, shapes), s);
      EXPECT_STREQ(rep.path, s < opt.start_iter ? "dense" : "powersgd");
      mine.push_back(g);
    }
    std::lock_guard<std::mutex> lock(mu);
    got[static_cast<size_t>(comm.rank())] = mine;
  });
  for (int k = 0; k < world; ++k) {
    for (int64_t s = 0; s < steps; ++s) {
      for (size_t t = 0; t < shapes.size(); ++t) {
        const Mat& g = got[static_cast<size_t>(k)][static_cast<size_t>(s)][t];
        EXPECT_LE(max_rel_diff(g, want[static_cast<size_t>(s)][t]), 1e-5)
            << "world " << world << " rank " << k << " step " << s << " tensor " << t;
        // Every rank holds the same result, bit for bit.
        EXPECT_TRUE(same_bits(g, got[0][static_cast<size_t>(s)][t]))
            << "world " << world << " rank " << k << " step " << s << " tensor " << t;
      }
    }
  }
}

const std::vector<Shape> kShapes = {{48, 20}, {1, 10}, {8, 8}, {30, 64}, {16, 1}};

TEST(PowerSgd, MatchesReferenceDefaults) {
  PowerSgd::Options opt;
  opt.start_iter = 2;
  for (const int world : {1, 2, 3, 4}) check_against_reference(world, kShapes, opt, 8, 1);
}

TEST(PowerSgd, MatchesReferenceRank2AndEveryOptionCombination) {
  for (const bool ef : {false, true}) {
    for (const bool warm : {false, true}) {
      PowerSgd::Options opt;
      opt.rank = 3;
      opt.start_iter = 1;
      opt.error_feedback = ef;
      opt.warm_start = warm;
      opt.seed = 77;
      opt.orthogonalization_epsilon = 0.0;
      for (const int world : {1, 2, 3, 4}) check_against_reference(world, kShapes, opt, 6, 2);
    }
  }
}

TEST(PowerSgd, WarmupStepsAreExactlyTheDenseAverage) {
  PowerSgd::Options opt;
  opt.start_iter = 3;
  for (const int world : {1, 2, 3, 4}) {
    run_local_ranks(world, [&](Communicator& comm) {
      PowerSgd algo(comm, opt);
      for (int64_t s = 0; s < 3; ++s) {
        std::vector<Mat> g;
        for (size_t t = 0; t < kShapes.size(); ++t) {
          g.push_back(random_matrix(kShapes[t], 5, comm.rank(), s, t));
        }
        const PowerSgdReport rep = algo.run(views(g, kShapes), s);
        EXPECT_STREQ(rep.path, "dense");
        for (size_t t = 0; t < kShapes.size(); ++t) {
          Mat want(g[t].size(), 0.0f);
          for (int k = 0; k < world; ++k) {
            const Mat in = random_matrix(kShapes[t], 5, k, s, t);
            for (size_t j = 0; j < want.size(); ++j) want[j] += in[j];
          }
          for (float& x : want) x /= static_cast<float>(world);
          EXPECT_TRUE(same_bits(g[t], want)) << "world " << world << " step " << s << " t " << t;
        }
        EXPECT_EQ(rep.compressed_matrices, 0);
        EXPECT_EQ(rep.dense_elements, 48 * 20 + 10 + 64 + 30 * 64 + 16);
        EXPECT_EQ(rep.payload_bytes, 4u * (48 * 20 + 10 + 64 + 30 * 64 + 16));
      }
      // No state before the first compressed step.
      EXPECT_EQ(algo.state_bytes(), 0u);
    });
  }
}

TEST(PowerSgd, CompressionDecisionAndByteReport) {
  // 64x32 at r = 2: (64 + 32) 2 * 2 = 384 < 2048, compressed. 8x8 at r = 2: 64 < 64 is false,
  // dense. 1x10: dense. 3x100 at r = 2: (103) 2 2 = 412 < 300 false, dense.
  const std::vector<Shape> shapes = {{64, 32}, {8, 8}, {1, 10}, {3, 100}};
  for (const int world : {1, 4}) {
    run_local_ranks(world, [&](Communicator& comm) {
      PowerSgd::Options opt;
      opt.rank = 2;
      opt.start_iter = 0;
      PowerSgd algo(comm, opt);
      std::vector<Mat> g;
      for (size_t t = 0; t < shapes.size(); ++t) {
        g.push_back(random_matrix(shapes[t], 9, comm.rank(), 0, t));
      }
      const uint64_t w = static_cast<uint64_t>(world);
      auto ring = [w](uint64_t bytes) { return w == 1 ? 0 : 2 * (w - 1) * bytes / w; };
      const uint64_t dense = 64 + 10 + 300;
      for (int64_t s = 0; s < 2; ++s) {
        const PowerSgdReport rep = algo.run(views(g, shapes), s);
        EXPECT_STREQ(rep.path, "powersgd");
        EXPECT_EQ(rep.compressed_matrices, 1);
        EXPECT_EQ(rep.dense_elements, static_cast<int64_t>(dense));
        EXPECT_EQ(rep.payload_bytes, 4u * (64 + 32) * 2 + 4u * dense);
        EXPECT_EQ(rep.bytes_dense, ring(4u * (2048 + dense)));
        // The verdicts (one float per rank, recursive doubling: ceil(log2 W) rounds), the P
        // all-reduce (64 x 2), the Q all-reduce (32 x 2 + dense); the first call also
        // all_gathers the 24-byte shape signature.
        const uint64_t header = s == 0 ? (w - 1) * 24 : 0;
        const uint64_t verdicts = w == 1 ? 0 : 4u * w * 2;  // log2(4) = 2 rounds
        EXPECT_EQ(rep.bytes_sent, header + verdicts + ring(4u * 128) + ring(4u * (64 + dense)));
        EXPECT_GT(rep.compress_s, 0.0);
        EXPECT_GE(rep.wait_s, 0.0);
      }
      // Q (32 x 2) and e (64 x 32) of the one compressed matrix.
      EXPECT_EQ(algo.state_bytes(), 4u * (64 + 2048));
    });
  }
  // The boundary is strict: 8x8 compresses once min_compression_rate drops below 2.
  run_local_ranks(1, [&](Communicator& comm) {
    PowerSgd::Options opt;
    opt.rank = 2;
    opt.start_iter = 0;
    opt.min_compression_rate = 1.99;
    PowerSgd algo(comm, opt);
    std::vector<Shape> s8 = {{8, 8}};
    std::vector<Mat> g = {random_matrix(s8[0], 1, 0, 0, 0)};
    const PowerSgdReport rep = algo.run(views(g, s8), 0);
    EXPECT_EQ(rep.compressed_matrices, 1);
    EXPECT_STREQ(rep.path, "powersgd");
  });
  // Nothing qualifies: the compressed path is one dense all-reduce.
  run_local_ranks(2, [&](Communicator& comm) {
    PowerSgd::Options opt;
    opt.start_iter = 0;
    PowerSgd algo(comm, opt);
    std::vector<Shape> s1 = {{1, 100}, {2, 2}};
    std::vector<Mat> g = {random_matrix(s1[0], 1, comm.rank(), 0, 0),
                          random_matrix(s1[1], 1, comm.rank(), 0, 1)};
    const PowerSgdReport rep = algo.run(views(g, s1), 5);
    EXPECT_STREQ(rep.path, "dense");
    EXPECT_EQ(rep.dense_elements, 104);
  });
}

// Orthonormal columns: Gram-Schmidt of random vectors.
Mat orthonormal(int64_t n, int64_t r, uint64_t salt) {
  Mat a = random_matrix({n, r}, salt, 99, 0, 0);
  gram_schmidt(a, n, r, 0.0);
  return a;
}

// U diag(sigma) V^T with orthonormal U (n x k), V (m x k).
Mat with_spectrum(int64_t n, int64_t m, const std::vector<double>& sigma, uint64_t salt) {
  const int64_t k = static_cast<int64_t>(sigma.size());
  const Mat u = orthonormal(n, k, salt), v = orthonormal(m, k, salt + 1);
  Mat out(static_cast<size_t>(n * m));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < m; ++j) {
      double acc = 0;
      for (int64_t c = 0; c < k; ++c) {
        acc += double{u[i * k + c]} * sigma[static_cast<size_t>(c)] * v[j * k + c];
      }
      out[i * m + j] = static_cast<float>(acc);
    }
  }
  return out;
}

TEST(PowerSgd, RecoversARankRMatrixExactly) {
  // Every rank holds U V_k^T with a shared U (n x r): the average has rank r, so P spans U and
  // P Q^T is the average itself, step after step (warm-started), with and without EF.
  const int64_t n = 40, m = 56;
  for (const int r : {1, 2, 3}) {
    for (const int world : {1, 2, 3, 4}) {
      for (const bool ef : {false, true}) {
        run_local_ranks(world, [&](Communicator& comm) {
          const Mat u = orthonormal(n, r, 3);
          Mat mine(static_cast<size_t>(n * m), 0.0f), avg(mine.size(), 0.0f);
          for (int k = 0; k < world; ++k) {
            const Mat v = random_matrix({m, r}, 4, k, 0, 0);
            for (int64_t i = 0; i < n; ++i) {
              for (int64_t j = 0; j < m; ++j) {
                double acc = 0;
                for (int c = 0; c < r; ++c) acc += double{u[i * r + c]} * v[j * r + c] * 3.0;
                if (k == comm.rank()) mine[i * m + j] = static_cast<float>(acc);
                avg[i * m + j] += static_cast<float>(acc / world);
              }
            }
          }
          PowerSgd::Options opt;
          opt.rank = r;
          opt.start_iter = 0;
          opt.error_feedback = ef;
          PowerSgd algo(comm, opt);
          const std::vector<Shape> shapes = {{n, m}};
          double max_abs = 0;
          for (const float x : avg) max_abs = std::max(max_abs, std::abs(double{x}));
          for (int64_t s = 0; s < 6; ++s) {
            std::vector<Mat> g = {mine};
            const PowerSgdReport rep = algo.run(views(g, shapes), s);
            ASSERT_EQ(rep.compressed_matrices, 1);
            double worst = 0;
            for (size_t j = 0; j < avg.size(); ++j) {
              worst = std::max(worst, std::abs(double{g[0][j]} - avg[j]));
            }
            EXPECT_LE(worst / max_abs, 1e-5)
                << "r " << r << " world " << world << " ef " << ef << " step " << s;
          }
        });
      }
    }
  }
}

TEST(PowerSgd, WarmStartConvergesToTheBestRankRApproximation) {
  // The same matrix with singular values 10, 5, 2, 1 on every rank, r = 2, no error feedback:
  // warm start makes the steps a subspace iteration, so ||M - M_hat||_F reaches the Eckart-Young
  // optimum sqrt(2^2 + 1^2); a fresh Q every step stays one power step away from it.
  const int64_t n = 50, m = 40;
  const Mat mat = with_spectrum(n, m, {10, 5, 2, 1}, 11);
  const double best = std::sqrt(5.0);
  for (const bool warm : {true, false}) {
    run_local_ranks(3, [&](Communicator& comm) {
      PowerSgd::Options opt;
      opt.rank = 2;
      opt.start_iter = 0;
      opt.error_feedback = false;
      opt.warm_start = warm;
      PowerSgd algo(comm, opt);
      const std::vector<Shape> shapes = {{n, m}};
      double last = 0, worst_late = 0;
      for (int64_t s = 0; s < 30; ++s) {
        std::vector<Mat> g = {mat};
        algo.run(views(g, shapes), s);
        Mat diff = mat;
        for (size_t j = 0; j < diff.size(); ++j) diff[j] -= g[0][j];
        last = frob(diff);
        if (s >= 20) worst_late = std::max(worst_late, last);
      }
      if (warm) {
        EXPECT_NEAR(last, best, best * 1e-4);
        EXPECT_NEAR(worst_late, best, best * 1e-4);
      } else {
        EXPECT_GT(worst_late, best * 1.05) << "a fresh Q every step should not reach the optimum";
      }
    });
  }
}

TEST(PowerSgd, ErrorFeedbackKeepsTheRunningSumOnTrack) {
  // g_k(t) = G + noise_k(t), G full rank, r = 1. With EF, sum_t applied - sum_t avg g(t) equals
  // -avg_k e_k(T) and stays bounded; without it the gap grows linearly with T.
  const int world = 2;
  const Shape sh{24, 20};
  const std::vector<Shape> shapes = {sh};
  const Mat big_g = random_matrix(sh, 21, 7, 0, 0);
  for (const bool ef : {true, false}) {
    std::vector<double> gap_at(4, 0.0), truth_at(4, 0.0);
    std::mutex mu;
    run_local_ranks(world, [&](Communicator& comm) {
      PowerSgd::Options opt;
      opt.rank = 1;
      opt.start_iter = 0;
      opt.error_feedback = ef;
      PowerSgd algo(comm, opt);
      Mat applied(big_g.size(), 0.0f), truth(big_g.size(), 0.0f);
      std::vector<double> gaps(4), truths(4);
      for (int64_t s = 0; s < 400; ++s) {
        std::vector<Mat> g(1);
        for (int k = 0; k < world; ++k) {
          Mat gk = random_matrix(sh, 22, k, s, 0);
          for (size_t j = 0; j < gk.size(); ++j) gk[j] = big_g[j] + 0.5f * gk[j];
          for (size_t j = 0; j < gk.size(); ++j) truth[j] += gk[j] / world;
          if (k == comm.rank()) g[0] = gk;
        }
        algo.run(views(g, shapes), s);
        for (size_t j = 0; j < g[0].size(); ++j) applied[j] += g[0][j];
        if ((s + 1) % 100 == 0) {
          Mat gap = applied;
          for (size_t j = 0; j < gap.size(); ++j) gap[j] -= truth[j];
          gaps[static_cast<size_t>(s / 100)] = frob(gap);
          truths[static_cast<size_t>(s / 100)] = frob(truth);
        }
      }
      if (ef) {
        // The identity behind the bound: the gap is minus the average residual.
        const StateDict sd = algo.state_dict();
        const StateTensor& e = sd.tensor("powersgd.error.0");
        Mat mine(big_g.size());
        std::memcpy(mine.data(), e.bytes.data(), e.bytes.size());
        Mat all(mine.size() * world);
        comm.all_gather(TensorView::of(mine.data(), static_cast<int64_t>(mine.size())),
                        TensorView::of(all.data(), static_cast<int64_t>(all.size())));
        Mat gap = applied;
        for (size_t j = 0; j < gap.size(); ++j) {
          double avg_e = 0;
          for (int k = 0; k < world; ++k) avg_e += all[static_cast<size_t>(k) * mine.size() + j];
          gap[j] -= truth[j] - static_cast<float>(avg_e / world);
        }
        EXPECT_LT(frob(gap), 1e-3 * frob(truth));
      }
      std::lock_guard<std::mutex> lock(mu);
      if (comm.rank() == 0) {
        gap_at = gaps;
        truth_at = truths;
      }
    });
    if (ef) {
      // Bounded: no growth from T = 100 to T = 400 (measured: 164, 158, 152, 169 against a sum
      // of norm 5283); without EF the gap grows linearly (1187, 2395, 3602, 4810).
      EXPECT_LT(gap_at[3], 1.5 * gap_at[0])
          << gap_at[0] << " " << gap_at[1] << " " << gap_at[2] << " " << gap_at[3];
      EXPECT_LT(gap_at[3], 0.05 * truth_at[3]) << gap_at[3] << " of " << truth_at[3];
    } else {
      EXPECT_GT(gap_at[3], 3.0 * gap_at[0])
          << gap_at[0] << " " << gap_at[1] << " " << gap_at[2] << " " << gap_at[3];
      EXPECT_GT(gap_at[3], 0.5 * truth_at[3]) << gap_at[3] << " of " << truth_at[3];
    }
  }
}

TEST(PowerSgd, StateDictRoundTripContinuesBitIdentically) {
  PowerSgd::Options opt;
  opt.rank = 2;
  opt.start_iter = 2;
  for (const int world : {1, 3}) {
    run_local_ranks(world, [&](Communicator& comm) {
      auto grads = [&](int64_t s) {
        std::vector<Mat> g;
        for (size_t t = 0; t < kShapes.size(); ++t) {
          g.push_back(random_matrix(kShapes[t], 31, comm.rank(), s, t));
        }
        return g;
      };
      PowerSgd a(comm, opt);
      for (int64_t s = 0; s < 5; ++s) {
        auto g = grads(s);
        a.run(views(g, kShapes), s);
      }
      const StateDict sd = a.state_dict();
      // Tensors 0 (48x20) and 3 (30x64) are compressed at r = 2.
      EXPECT_EQ(sd.tensor("powersgd.q.0").shape, (std::vector<int64_t>{20, 2}));
      EXPECT_EQ(sd.tensor("powersgd.error.0").shape, (std::vector<int64_t>{48, 20}));
      EXPECT_EQ(sd.tensor("powersgd.q.3").shape, (std::vector<int64_t>{64, 2}));
      EXPECT_EQ(sd.tensor("powersgd.error.3").shape, (std::vector<int64_t>{30, 64}));
      EXPECT_EQ(sd.tensors.count("powersgd.q.1"), 0u);
      EXPECT_EQ(sd.int_value("powersgd.rank"), 2);
      EXPECT_EQ(a.state_bytes(), 4u * (20 * 2 + 48 * 20 + 64 * 2 + 30 * 64));
      // b loads before its first run(); c after running a step of its own.
      PowerSgd b(comm, opt), c(comm, opt);
      b.load_state_dict(sd);
      {
        auto g = grads(100);
        c.run(views(g, kShapes), 100);
      }
      c.load_state_dict(sd);
      EXPECT_TRUE(b.state_dict() == sd);
      EXPECT_TRUE(c.state_dict() == sd);
      for (int64_t s = 5; s < 10; ++s) {
        auto ga = grads(s), gb = grads(s), gc = grads(s);
        a.run(views(ga, kShapes), s);
        b.run(views(gb, kShapes), s);
        c.run(views(gc, kShapes), s);
        for (size_t t = 0; t < kShapes.size(); ++t) {
          EXPECT_TRUE(same_bits(ga[t], gb[t])) << "step " << s << " tensor " << t;
          EXPECT_TRUE(same_bits(ga[t], gc[t])) << "step " << s << " tensor " << t;
        }
      }
      EXPECT_TRUE(a.state_dict() == b.state_dict());
    });
  }
}

// The passes over M run on cpu_threads() threads for matrices of 2^16 elements or more (rows for
// P and the reconstruction, ranges of 16 columns for Q): every output and every state bit must be
// those of one thread. Shapes with a column count that is not a multiple of 16, and more threads
// than 16-column ranges for the narrow one.
TEST(PowerSgd, ThreadCountChangesNoBit) {
  const std::vector<Shape> shapes = {{260, 257}, {3300, 20}, {96, 700}, {8, 8}};
  PowerSgd::Options opt;
  opt.rank = 4;
  opt.start_iter = 1;
  struct Result {
    std::vector<std::vector<Mat>> out;  // [step][tensor], rank 0
    StateDict state;
  };
  auto run_with = [&](int threads) {
    set_cpu_threads(threads);
    Result res;
    std::mutex mu;
    run_local_ranks(2, [&](Communicator& comm) {
      PowerSgd algo(comm, opt);
      std::vector<std::vector<Mat>> mine;
      for (int64_t s = 0; s < 4; ++s) {
        std::vector<Mat> g;
        for (size_t t = 0; t < shapes.size(); ++t) {
          g.push_back(random_matrix(shapes[t], 5, comm.rank(), s, t));
        }
        algo.run(views(g, shapes), s);
        mine.push_back(g);
      }
      if (comm.rank() != 0) return;
      std::lock_guard<std::mutex> lock(mu);
      res.out = mine;
      res.state = algo.state_dict();
    });
    return res;
  };
  const Result one = run_with(1);
  const Result three = run_with(3);
  const int seen = cpu_threads();
  set_cpu_threads(0);
  if (seen < 3) GTEST_SKIP() << "built without OpenMP: the passes run on one thread";
  ASSERT_EQ(one.out.size(), three.out.size());
  for (size_t s = 0; s < one.out.size(); ++s) {
    for (size_t t = 0; t < shapes.size(); ++t) {
      EXPECT_TRUE(same_bits(one.out[s][t], three.out[s][t])) << "step " << s << " tensor " << t;
    }
  }
  EXPECT_TRUE(one.state == three.state);
}

TEST(PowerSgd, LoadStateDictRejectsMismatches) {
  run_local_ranks(1, [&](Communicator& comm) {
    PowerSgd::Options opt;
    opt.rank = 2;
    opt.start_iter = 0;
    PowerSgd a(comm, opt);
    std::vector<Mat> g;
    for (size_t t = 0; t < kShapes.size(); ++t) g.push_back(random_matrix(kShapes[t], 1, 0, 0, t));
    a.run(views(g, kShapes), 0);
    const StateDict good = a.state_dict();
    auto expect_corrupt = [&](const StateDict& s, const std::string& text) {
      PowerSgd b(comm, opt);
      std::vector<Mat> gb = g;
      b.run(views(gb, kShapes), 0);
      const StateDict before = b.state_dict();
      try {
        b.load_state_dict(s);
        ADD_FAILURE() << "no CorruptData for " << text;
      } catch (const CorruptData& e) {
        EXPECT_THAT(e.what(), HasSubstr(text));
      }
      EXPECT_TRUE(b.state_dict() == before) << "a failed load changed the state: " << text;
    };
    StateDict s = good;
    s.tensors["powersgd.q.0"].shape = {2, 20};
    expect_corrupt(s, "powersgd.q.0 has shape 2x20");
    s = good;
    s.tensors["powersgd.error.3"].bytes.resize(8);
    expect_corrupt(s, "powersgd.error.3 has shape 30x64 and 8 bytes");
    s = good;
    s.tensors["powersgd.q.0"].dtype = DType::kI32;
    expect_corrupt(s, "powersgd.q.0 holds i32");
    s = good;
    s.tensors["powersgd.q.1"] = s.tensors["powersgd.q.0"];
    expect_corrupt(s, "tensor 1 is not compressed");
    s = good;
    s.tensors["powersgd.bogus"] = s.tensors["powersgd.q.0"];
    expect_corrupt(s, "unknown key powersgd.bogus");
    s = good;
    s.ints["powersgd.version"] = 7;
    expect_corrupt(s, "powersgd.version is 7");
    s = good;
    s.ints["powersgd.rank"] = 1;
    expect_corrupt(s, "saved with rank 1");
    s = good;
    reinterpret_cast<int64_t*>(s.tensors["powersgd.shapes"].bytes.data())[0] = 47;
    expect_corrupt(s, "tensor 0 as 47x20 but run() was given 48x20");
    s = good;
    reinterpret_cast<float*>(s.tensors["powersgd.error.0"].bytes.data())[5] = NAN;
    expect_corrupt(s, "non-finite");

    // Loaded before the first run(): the shapes are checked by that run().
    s = good;
    reinterpret_cast<int64_t*>(s.tensors["powersgd.shapes"].bytes.data())[6] = 31;
    reinterpret_cast<int64_t*>(s.tensors["powersgd.shapes"].bytes.data())[7] = 64;
    s.tensors.erase("powersgd.q.3");
    s.tensors.erase("powersgd.error.3");
    PowerSgd fresh(comm, opt);
    fresh.load_state_dict(s);
    std::vector<Mat> gf = g;
    try {
      fresh.run(views(gf, kShapes), 0);
      ADD_FAILURE() << "run() accepted a state of other shapes";
    } catch (const CorruptData& e) {
      EXPECT_THAT(e.what(), HasSubstr("loaded PowerSgd state has tensor 3 as 31x64"));
    }
  });
}

TEST(PowerSgd, BadOptionsAreRejected) {
  auto comms = make_local_communicators(1);
  auto expect_bad = [&](PowerSgd::Options o, const std::string& text) {
    try {
      PowerSgd algo(*comms[0], o);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const InvalidArgument& e) {
      EXPECT_THAT(e.what(), HasSubstr(text));
    }
  };
  PowerSgd::Options o;
  o.rank = 0;
  expect_bad(o, "rank must be >= 1, got 0");
  o = {};
  o.min_compression_rate = 0;
  expect_bad(o, "min_compression_rate must be finite and > 0, got 0");
  o.min_compression_rate = std::numeric_limits<double>::quiet_NaN();
  expect_bad(o, "min_compression_rate must be finite and > 0, got nan");
  o = {};
  o.start_iter = -1;
  expect_bad(o, "start_iter must be >= 0, got -1");
  o = {};
  o.orthogonalization_epsilon = -1e-8;
  expect_bad(o, "orthogonalization_epsilon must be finite and >= 0");
  PowerSgd ok(*comms[0], PowerSgd::Options());
  EXPECT_STREQ(ok.name(), "powersgd");
}

TEST(PowerSgd, MismatchedShapesFailOnEveryRankNamingTheTensor) {
  const auto timeout = std::chrono::seconds(20);
  // Rank 2 passes tensor 1 transposed.
  auto outcomes = run_each(3, timeout, [&](Communicator& comm) {
    std::vector<Shape> shapes = {{48, 20}, {30, 64}, {1, 10}};
    if (comm.rank() == 2) shapes[1] = {64, 30};
    std::vector<Mat> g;
    for (size_t t = 0; t < shapes.size(); ++t) g.push_back(random_matrix(shapes[t], 1, 0, 0, t));
    PowerSgd algo(comm, PowerSgd::Options());
    algo.run(views(g, shapes), 20);
  });
  for (int r = 0; r < 3; ++r) {
    const Outcome& o = outcomes[static_cast<size_t>(r)];
    EXPECT_EQ(o.type, "InvalidArgument") << r << ": " << o.what;
    EXPECT_THAT(o.what, HasSubstr(r == 2 ? "tensor 1 is 64x30 on rank 2 and 30x64 on rank 0"
                                         : "tensor 1 is 30x64 on rank " + std::to_string(r) +
                                               " and 64x30 on rank 2"));
  }
  // Rank 1 passes one tensor fewer.
  outcomes = run_each(2, timeout, [&](Communicator& comm) {
    std::vector<Shape> shapes = {{48, 20}, {30, 64}};
    if (comm.rank() == 1) shapes.pop_back();
    std::vector<Mat> g;
    for (size_t t = 0; t < shapes.size(); ++t) g.push_back(random_matrix(shapes[t], 1, 0, 0, t));
    PowerSgd algo(comm, PowerSgd::Options());
    algo.run(views(g, shapes), 0);
  });
  EXPECT_EQ(outcomes[0].type, "InvalidArgument");
  EXPECT_THAT(outcomes[0].what, HasSubstr("tensor 1 is 30x64 on rank 0 and none on rank 1"));
  EXPECT_THAT(outcomes[1].what, HasSubstr("tensor 1 is none on rank 1 and 30x64 on rank 0"));
  // Shapes that change on one rank after the first call: that rank throws InvalidArgument, the
  // others CommError at once (the verdict travels in the first collective), for both paths.
  for (const int64_t step : {int64_t{0}, int64_t{50}}) {
    const auto start = std::chrono::steady_clock::now();
    outcomes = run_each(3, timeout, [&](Communicator& comm) {
      std::vector<Shape> shapes = {{48, 20}, {30, 64}};
      std::vector<Mat> g;
      for (size_t t = 0; t < shapes.size(); ++t) g.push_back(random_matrix(shapes[t], 1, 0, 0, t));
      PowerSgd algo(comm, PowerSgd::Options());
      algo.run(views(g, shapes), step);
      if (comm.rank() == 1) shapes[0] = {20, 48};
      algo.run(views(g, shapes), step + 1);
    });
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
    EXPECT_EQ(outcomes[1].type, "InvalidArgument");
    EXPECT_THAT(outcomes[1].what, HasSubstr("tensor 0 is 20x48 but was 48x20 on the first call"));
    for (const int r : {0, 2}) {
      EXPECT_EQ(outcomes[static_cast<size_t>(r)].type, "CommError");
      EXPECT_THAT(outcomes[static_cast<size_t>(r)].what,
                  HasSubstr("rank 1 passed invalid gradients"));
    }
  }
  // A null pointer on the first call: the same split, through the shape signature.
  outcomes = run_each(2, timeout, [&](Communicator& comm) {
    std::vector<Shape> shapes = {{48, 20}};
    std::vector<Mat> g = {random_matrix(shapes[0], 1, 0, 0, 0)};
    auto v = views(g, shapes);
    if (comm.rank() == 0) v[0].data = nullptr;
    PowerSgd algo(comm, PowerSgd::Options());
    algo.run(v, 0);
  });
  EXPECT_EQ(outcomes[0].type, "InvalidArgument");
  EXPECT_THAT(outcomes[0].what, HasSubstr("tensor 0 (48x20) has a null data pointer"));
  EXPECT_EQ(outcomes[1].type, "CommError");
}

TEST(PowerSgd, NonFiniteInputFailsOnEveryRankAndChangesNothing) {
  // Rank 1's tensor 3 holds a NaN (or Inf) at step 6: every rank throws NumericalError naming it,
  // no gradient changes, and the state is as if the step never happened: a twin that skips the
  // step gives bit-identical results afterwards.
  for (const int64_t bad_step : {int64_t{1}, int64_t{6}}) {  // dense warm-up, compressed
    for (const float bad :
         {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
      PowerSgd::Options opt;
      opt.rank = 2;
      opt.start_iter = 3;
      const auto outcomes = run_each(3, std::chrono::seconds(20), [&](Communicator& comm) {
        PowerSgd algo(comm, opt), twin(comm, opt);
        for (int64_t s = 0; s < 10; ++s) {
          std::vector<Mat> g, gt;
          for (size_t t = 0; t < kShapes.size(); ++t) {
            g.push_back(random_matrix(kShapes[t], 41, comm.rank(), s, t));
          }
          if (s == bad_step) {
            if (comm.rank() == 1) g[3][17] = bad;
            const std::vector<Mat> before = g;
            try {
              algo.run(views(g, kShapes), s);
              ADD_FAILURE() << "no NumericalError on rank " << comm.rank();
            } catch (const NumericalError& e) {
              EXPECT_THAT(e.what(), HasSubstr("rank 1 tensor 3 (30x64)"));
            }
            for (size_t t = 0; t < g.size(); ++t) {
              // Bitwise, so the NaN compares equal to itself.
              EXPECT_TRUE(same_bits(g[t], before[t])) << "tensor " << t << " changed";
            }
            continue;
          }
          gt = g;
          algo.run(views(g, kShapes), s);
          twin.run(views(gt, kShapes), s);
          for (size_t t = 0; t < g.size(); ++t) {
            EXPECT_TRUE(same_bits(g[t], gt[t])) << "step " << s << " tensor " << t;
          }
        }
      });
      for (const Outcome& o : outcomes) EXPECT_EQ(o.type, "") << o.what;
    }
  }
}

TEST(PowerSgd, AllZeroGradientNeedsAPositiveEpsilon) {
  // Zero gradients on every rank: P = 0. With the default eps the result is exactly 0; with
  // eps = 0 (torch's current default) the normalisation divides by 0, which every rank detects
  // alike before anything changes.
  const std::vector<Shape> shapes = {{16, 12}};
  for (const double eps : {1e-8, 0.0}) {
    const auto outcomes = run_each(2, std::chrono::seconds(20), [&](Communicator& comm) {
      PowerSgd::Options opt;
      opt.start_iter = 0;
      opt.orthogonalization_epsilon = eps;
      PowerSgd algo(comm, opt);
      std::vector<Mat> g = {Mat(16 * 12, 0.0f)};
      g[0][0] = comm.rank() == 0 ? 1.0f : -1.0f;  // sums to zero
      const Mat before = g[0];
      try {
        algo.run(views(g, shapes), 0);
      } catch (const NumericalError&) {
        EXPECT_TRUE(same_bits(g[0], before));
        EXPECT_EQ(algo.state_bytes(), 0u);
        throw;
      }
      for (const float x : g[0]) EXPECT_EQ(x, 0.0f);
      // The zero Q this leaves is redrawn, so a rank-1 gradient afterwards is recovered.
      const Mat u = orthonormal(16, 1, 5), v = orthonormal(12, 1, 6);
      for (int64_t s = 1; s < 4; ++s) {
        for (int64_t i = 0; i < 16; ++i) {
          for (int64_t j = 0; j < 12; ++j) g[0][i * 12 + j] = 4.0f * u[i] * v[j];
        }
        const Mat want = g[0];
        algo.run(views(g, shapes), s);
        EXPECT_LE(max_rel_diff(g[0], want), 1e-5) << "step " << s;
      }
    });
    for (const Outcome& o : outcomes) {
      if (eps > 0) {
        EXPECT_EQ(o.type, "") << o.what;
      } else {
        EXPECT_EQ(o.type, "NumericalError");
        EXPECT_THAT(o.what, HasSubstr("orthogonalizing P of tensor 0 (16x12)"));
      }
    }
  }
}

TEST(PowerSgd, RandomQIsDeterministicStandardNormal) {
  std::vector<float> a(100001), b(100001), c(100001), d(7);
  power_sgd_random_q(5, 3, -1, a.data(), static_cast<int64_t>(a.size()));
  power_sgd_random_q(5, 3, -1, b.data(), static_cast<int64_t>(b.size()));
  power_sgd_random_q(5, 4, -1, c.data(), static_cast<int64_t>(c.size()));
  power_sgd_random_q(5, 3, -1, d.data(), 7);
  EXPECT_TRUE(same_bits(a, b));
  EXPECT_FALSE(same_bits(a, c));
  // A prefix of a longer draw.
  for (size_t i = 0; i < d.size(); ++i) EXPECT_EQ(d[i], a[i]);
  double sum = 0, sq = 0, inside = 0;
  for (const float x : a) {
    ASSERT_TRUE(std::isfinite(x));
    sum += x;
    sq += double{x} * x;
    inside += std::abs(x) < 1.0f ? 1 : 0;
  }
  const double count = static_cast<double>(a.size());
  EXPECT_NEAR(sum / count, 0.0, 0.01);
  EXPECT_NEAR(sq / count, 1.0, 0.02);
  EXPECT_NEAR(inside / count, 0.6827, 0.005);  // P(|z| < 1) of N(0, 1)
}

}  // namespace
}  // namespace terse

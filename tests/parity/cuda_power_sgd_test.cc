// PowerSGD on the GPU against the CPU. The kernels (terse/kernels/cuda_power_sgd.h): the products
// within the rigorous error bound of an f32 dot product, Gram-Schmidt within a few units of the
// CPU's (both sum in double), the decompression and error update bit for bit given the same P
// and Q, the flags. PowerSgd on CUDA views: every step of square, tall and wide matrices, vectors,
// a matrix with a zero column and an all-zero one (the epsilon path, then a redrawn Q), at ranks
// 1, 2 and 4, with and without error feedback and warm start, on 1 and 2 thread-ranks, within the
// tolerance of docs/collectives.md ("On the GPU") of the CPU run over 10 compressed steps; dense
// tensors and warm-up steps bit for bit; GPU ranks equal to each other bit for bit; checkpoints
// moving between devices; non-finite inputs and overflows refused as on the CPU with nothing
// changed. Skipped, with a message, without a GPU; the argument checks that need none run
// everywhere.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <exception>
#include <functional>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cuda_power_sgd_test_util.h"
#include "gpu_skip.h"
#include "power_sgd_internal.h"
#include "rank_outcomes.h"
#include "terse/comm/algorithms/power_sgd.h"
#include "terse/comm/local_communicator.h"
#include "terse/core/error.h"
#include "terse/core/philox.h"
#include "terse/kernels/cuda_buffer.h"
#include "terse/kernels/cuda_power_sgd.h"

namespace terse::psgd_test {
namespace {

using ::testing::HasSubstr;

constexpr int kDevice = 0;
constexpr double kU = 0x1p-24;

Mat uniform(int64_t n, uint64_t seed, float scale = 1.0f) {
  PhiloxStream rng(seed, 7);
  Mat m(static_cast<size_t>(n));
  for (float& x : m) x = scale * (2.0f * rng.uniform() - 1.0f);
  return m;
}

// A device copy of a host array, read back with get().
class Dev {
 public:
  explicit Dev(const Mat& m)
      : n_(m.size()), buf_(kDevice, sizeof(float) * std::max<size_t>(n_, 1)) {
    if (n_ > 0) cuda_copy(buf_.data(), m.data(), sizeof(float) * n_);
  }
  float* p() const { return static_cast<float*>(buf_.data()); }
  Mat get() const {
    Mat m(n_);
    if (n_ > 0) cuda_copy(m.data(), buf_.data(), sizeof(float) * n_);
    return m;
  }

 private:
  size_t n_;
  CudaBuffer buf_;
};

// A device word, zeroed.
class Word {
 public:
  Word() : buf_(kDevice, sizeof(uint32_t)) {}
  uint32_t* p() const { return static_cast<uint32_t*>(buf_.data()); }
  uint32_t get() const {
    uint32_t v = 0;
    cuda_copy(&v, buf_.data(), sizeof v);
    return v;
  }

 private:
  CudaBuffer buf_;
};

// ---- the CPU's loops -----------------------------------------------

// The CPU's Gram-Schmidt itself (power_sgd_internal.h).
void cpu_gram_schmidt(Mat& a, int64_t n, int64_t r, double eps) {
  power_sgd_detail::orthogonalize(a.data(), n, r, eps);
}

// The CPU's commit and decompression for one matrix: M <- M + e (add_error), approx = P Q^T
// summed over k in order, e <- M - approx (ef), M <- approx.
void cpu_decompress(Mat& m, Mat* e, bool add_error, int64_t rows, int64_t cols, const Mat& p,
                    const Mat& q, int64_t r) {
  for (int64_t a = 0; a < rows; ++a) {
    for (int64_t j = 0; j < cols; ++j) {
      float approx = 0.0f;
      for (int64_t k = 0; k < r; ++k) approx += p[a * r + k] * q[j * r + k];
      float& g = m[a * cols + j];
      if (e != nullptr) {
        float& ev = (*e)[a * cols + j];
        if (add_error) g += ev;
        ev = g - approx;
      }
      g = approx;
    }
  }
}

// ---- kernels
// -------------------------------------------------------------------------------------

// |x - exact| <= gamma_k sum |terms| for any order and FMA use (Higham, Thm 3.1 / 3.5), with
// k terms; a little slack for the exact reference's own double rounding.
void expect_within_dot_bound(const Mat& got, const std::vector<double>& exact,
                             const std::vector<double>& abs_sum, int64_t k,
                             const std::string& what) {
  const double gamma = k * kU / (1 - k * kU);
  ASSERT_EQ(got.size(), exact.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    const double bound = gamma * abs_sum[i] + 1e-30;
    ASSERT_LE(std::fabs(got[i] - exact[i]), bound) << what << " element " << i;
  }
}

TEST(CudaPowerSgdKernels, ProductsAreWithinTheBoundOfAnF32DotProduct) {
  TERSE_SKIP_WITHOUT_GPU();
  struct Case {
    int64_t rows, cols, r;
  };
  for (const Case c : {Case{1, 1, 1}, Case{5, 3, 2}, Case{300, 200, 1}, Case{64, 4097, 4},
                       Case{4097, 64, 16}, Case{129, 257, 3}, Case{200, 300, 40}}) {
    for (const bool with_e : {false, true}) {
      const std::string what = std::to_string(c.rows) + "x" + std::to_string(c.cols) +
                               " r=" + std::to_string(c.r) + (with_e ? " with e" : "");
      const Mat m = uniform(c.rows * c.cols, 1), e = uniform(c.rows * c.cols, 2, 0.5f);
      const Mat q = uniform(c.cols * c.r, 3), p = uniform(c.rows * c.r, 4);
      const Dev dm(m), de(e), dq(q), dp(p);
      Dev outp(Mat(static_cast<size_t>(c.rows * c.r), 7.0f));
      Dev outq(Mat(static_cast<size_t>(c.cols * c.r), 7.0f));
      cuda_power_sgd_project(kDevice, dm.p(), with_e ? de.p() : nullptr, c.rows, c.cols, dq.p(),
                             c.r, outp.p());
      cuda_power_sgd_back_project(kDevice, dm.p(), with_e ? de.p() : nullptr, c.rows, c.cols,
                                  dp.p(), c.r, outq.p());
      // Exact (double) references and the sums of |terms|.
      std::vector<double> pe(static_cast<size_t>(c.rows * c.r)), pa(pe.size());
      std::vector<double> qe(static_cast<size_t>(c.cols * c.r)), qa(qe.size());
      for (int64_t a = 0; a < c.rows; ++a) {
        for (int64_t j = 0; j < c.cols; ++j) {
          const double s = m[a * c.cols + j] + (with_e ? double{e[a * c.cols + j]} : 0.0);
          const double sa =
              std::fabs(m[a * c.cols + j]) + (with_e ? std::fabs(e[a * c.cols + j]) : 0.0);
          for (int64_t k = 0; k < c.r; ++k) {
            pe[a * c.r + k] += s * q[j * c.r + k];
            pa[a * c.r + k] += sa * std::fabs(q[j * c.r + k]);
            qe[j * c.r + k] += s * p[a * c.r + k];
            qa[j * c.r + k] += sa * std::fabs(p[a * c.r + k]);
          }
        }
      }
      // With e: two products of k terms and one addition, within gamma_(2k + 1).
      const int64_t terms = with_e ? 2 * c.cols + 1 : c.cols;
      expect_within_dot_bound(outp.get(), pe, pa, terms, "P of " + what);
      const int64_t qterms = with_e ? 2 * c.rows + 1 : c.rows;
      expect_within_dot_bound(outq.get(), qe, qa, qterms, "Q of " + what);
    }
  }
}

TEST(CudaPowerSgdKernels, GramSchmidtMatchesTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  // n >= r: full column rank, so the result is well determined (a rank-deficient P leaves
  // columns of rounding noise, normalized, that no two summation orders agree on).
  struct Case {
    int64_t n, r;
  };
  const std::vector<Case> cases = {{1, 1},     {3, 2},     {257, 1}, {257, 5},
                                   {4099, 16}, {1000, 20}, {20, 20}, {70000, 3}};
  std::vector<Mat> host;
  std::vector<Dev> dev;
  for (size_t c = 0; c < cases.size(); ++c) {
    host.push_back(uniform(cases[c].n * cases[c].r, 10 + c));
    dev.emplace_back(host.back());
  }
  // All in one call (several matrices per launch), eps as PowerSgd's default.
  std::vector<CudaOrthoMatrix> list;
  for (size_t c = 0; c < cases.size(); ++c) list.push_back({dev[c].p(), cases[c].n, cases[c].r});
  cuda_power_sgd_orthogonalize(kDevice, list, 1e-8);
  for (size_t c = 0; c < cases.size(); ++c) {
    Mat want = host[c];
    cpu_gram_schmidt(want, cases[c].n, cases[c].r, 1e-8);
    const Mat got = dev[c].get();
    // Both sum in double and round once to f32: the results differ by a few units of f32 at
    // most (entries are at most 1).
    EXPECT_LE(max_abs_diff(got, want), 16 * kU * cases[c].r) << cases[c].n << "x" << cases[c].r;
  }
}

TEST(CudaPowerSgdKernels, GramSchmidtZeroColumnsFollowTheCpusEpsilon) {
  TERSE_SKIP_WITHOUT_GPU();
  const int64_t n = 300, r = 4;
  Mat a = uniform(n * r, 20);
  for (int64_t row = 0; row < n; ++row) a[row * r + 1] = 0.0f;  // column 1 all zero
  for (const double eps : {1e-8, 0.0}) {
    Dev d(a);
    cuda_power_sgd_orthogonalize(kDevice, {{d.p(), n, r}}, eps);
    Mat want = a;
    cpu_gram_schmidt(want, n, r, eps);
    const Mat got = d.get();
    for (int64_t row = 0; row < n; ++row) {
      const float g = got[row * r + 1], w = want[row * r + 1];
      if (eps == 0) {
        EXPECT_TRUE(std::isnan(g) && std::isnan(w)) << "row " << row << ": 0 / 0";
      } else {
        EXPECT_EQ(g, 0.0f) << "row " << row;
        EXPECT_EQ(w, 0.0f) << "row " << row;
      }
    }
    if (eps > 0) {
      EXPECT_LE(max_abs_diff(got, want), 64 * kU);
    }
  }
}

TEST(CudaPowerSgdKernels, DecompressionIsBitIdenticalToTheCpuLoop) {
  TERSE_SKIP_WITHOUT_GPU();
  struct Case {
    int64_t rows, cols;
  };
  const std::vector<Case> shapes = {{1, 1}, {3, 1000}, {257, 300}, {1000, 3}, {64, 4097}};
  for (const Case c : shapes) {
    for (const int64_t r : {1, 2, 3, 4, 7, 8, 16, 17, 40}) {
      for (int mode = 0; mode < 3; ++mode) {  // 0: no e, 1: e without add, 2: e with add
        const std::string what = std::to_string(c.rows) + "x" + std::to_string(c.cols) +
                                 " r=" + std::to_string(r) + " mode " + std::to_string(mode);
        Mat m = uniform(c.rows * c.cols, 30), e = uniform(c.rows * c.cols, 31, 0.25f);
        const Mat p = uniform(c.rows * r, 32), q = uniform(c.cols * r, 33);
        const Dev dm(m), de(e), dp(p), dq(q);
        const Word big;
        cuda_power_sgd_decompress(kDevice, dm.p(), mode == 0 ? nullptr : de.p(), mode == 2, c.rows,
                                  c.cols, dp.p(), dq.p(), r, big.p());
        cpu_decompress(m, mode == 0 ? nullptr : &e, mode == 2, c.rows, c.cols, p, q, r);
        EXPECT_TRUE(same_bits(dm.get(), m)) << what << ": M";
        if (mode != 0) {
          EXPECT_TRUE(same_bits(de.get(), e)) << what << ": e";
        }
        EXPECT_EQ(big.get(), 0u) << what;
      }
    }
  }
}

TEST(CudaPowerSgdKernels, DecompressionFlagsAnErrorThatMayOverflow) {
  TERSE_SKIP_WITHOUT_GPU();
  const int64_t rows = 5, cols = 300, r = 2;
  const Mat p = uniform(rows * r, 40), q = uniform(cols * r, 41);
  for (const float huge :
       {0x1p103f, -0x1p104f, std::numeric_limits<float>::quiet_NaN(), 0x1.fffffep102f}) {
    Mat m = uniform(rows * cols, 42), e(static_cast<size_t>(rows * cols), 0.0f);
    m[777] = huge;  // e = m + 0 - approx: |e| >= 2^103 exactly when |huge| is
    const Dev dm(m), de(e), dp(p), dq(q);
    const Word big;
    cuda_power_sgd_decompress(kDevice, dm.p(), de.p(), true, rows, cols, dp.p(), dq.p(), r,
                              big.p());
    const bool want = !(std::fabs(huge) < 0x1p103f);
    EXPECT_EQ(big.get(), want ? 1u : 0u) << huge;
  }
}

TEST(CudaPowerSgdKernels, FlagsFindNonFiniteValuesOverflowsAndZeroColumns) {
  TERSE_SKIP_WITHOUT_GPU();
  const int64_t n = (int64_t{1} << 20) + 3;
  for (const int64_t at : {int64_t{-1}, int64_t{0}, n - 1, n / 2}) {
    for (const float bad : {std::numeric_limits<float>::quiet_NaN(), -INFINITY}) {
      Mat x = uniform(n, 50);
      if (at >= 0) x[static_cast<size_t>(at)] = bad;
      const Dev d(x);
      const Word w;
      cuda_power_sgd_flag_nonfinite(kDevice, d.p(), n, w.p());
      EXPECT_EQ(w.get(), at >= 0 ? 1u : 0u) << "at " << at;
    }
  }
  // x + y overflows although both are finite.
  Mat x = uniform(4097, 51), y = uniform(4097, 52);
  const Dev dx0(x), dy0(y);
  const Word ok;
  cuda_power_sgd_flag_nonfinite_sum(kDevice, dx0.p(), dy0.p(), 4097, ok.p());
  EXPECT_EQ(ok.get(), 0u);
  x[4096] = 3e38f;
  y[4096] = 3e38f;
  const Dev dx(x), dy(y);
  const Word over;
  cuda_power_sgd_flag_nonfinite_sum(kDevice, dx.p(), dy.p(), 4097, over.p());
  EXPECT_EQ(over.get(), 1u);
  // Zero columns: none, the last one, one whose only non-zero is -0 (a zero).
  const int64_t rows = 1000, cols = 5;
  for (int variant = 0; variant < 3; ++variant) {
    Mat q = uniform(rows * cols, 53);
    if (variant >= 1) {
      for (int64_t a = 0; a < rows; ++a) q[a * cols + cols - 1] = 0.0f;
    }
    if (variant == 2) q[999 * cols + cols - 1] = -0.0f;
    const Dev d(q);
    const Word w;
    cuda_power_sgd_flag_zero_column(kDevice, d.p(), rows, cols, w.p());
    EXPECT_EQ(w.get(), variant == 0 ? 0u : 1u) << "variant " << variant;
  }
}

// ---- PowerSgd on CUDA views against the CPU --------------------------------------------------

// What one run (CPU or GPU) produced, per rank: the gradients after every step, the scale of
// every step's input (max |M| + max |e|, e from the CPU run's state before the step), the reports
// and the final state.
struct Outputs {
  std::vector<std::vector<std::vector<Mat>>> out;  // [rank][step][tensor]
  std::vector<std::vector<std::vector<double>>> scale;
  std::vector<std::vector<PowerSgdReport>> reports;
  std::vector<StateDict> state;
};

// Runs `steps` steps on `world` thread-ranks, on the CPU or (gpu) on CUDA views.
Outputs run_steps(bool gpu, int world, const std::vector<Tensor>& ts, const PowerSgd::Options& opt,
                  int64_t steps, uint64_t salt) {
  Outputs out;
  out.out.resize(static_cast<size_t>(world));
  out.scale.resize(static_cast<size_t>(world));
  out.reports.resize(static_cast<size_t>(world));
  out.state.resize(static_cast<size_t>(world));
  std::mutex mu;
  run_local_ranks(world, [&](Communicator& comm) {
    PowerSgd algo(comm, opt);
    std::vector<std::vector<Mat>> outs;
    std::vector<std::vector<double>> scales;
    std::vector<PowerSgdReport> reps;
    for (int64_t s = 0; s < steps; ++s) {
      std::vector<Mat> g = make_grads(ts, salt, comm.rank(), s);
      const StateDict before = algo.state_dict();
      std::vector<double> sc;
      for (size_t t = 0; t < ts.size(); ++t) {
        const auto key = "powersgd.error." + std::to_string(t);
        const double e = before.tensors.count(key) ? max_abs(floats_of(before.tensor(key))) : 0;
        sc.push_back(max_abs(g[t]) + e);
      }
      scales.push_back(sc);
      if (gpu) {
        const DeviceGrads d(g, ts, kDevice);
        reps.push_back(algo.run(d.views(), s));
        outs.push_back(d.to_host());
      } else {
        reps.push_back(algo.run(host_views(g, ts), s));
        outs.push_back(g);
      }
    }
    const StateDict final_state = algo.state_dict();
    std::lock_guard<std::mutex> lock(mu);
    const auto k = static_cast<size_t>(comm.rank());
    out.out[k] = outs;
    out.scale[k] = scales;
    out.reports[k] = reps;
    out.state[k] = final_state;
  });
  return out;
}

// The scale of step s, tensor t: the largest over the ranks.
double scale_of(const Outputs& r, size_t s, size_t t) {
  double m = 0;
  for (const auto& rank : r.scale) m = std::max(m, rank[s][t]);
  return m;
}

// Compares a GPU run with the CPU run of the same inputs: compressed results within the
// tolerance, everything dense bit for bit, the reports' counts equal, GPU ranks equal to each
// other, the final states within the tolerance (Q scaled by sqrt(rows): |Q_jk| <= ||S_:j||).
void expect_close(const Outputs& cpu, const Outputs& gpu, const std::vector<Tensor>& ts,
                  const PowerSgd::Options& opt, const std::string& what) {
  const size_t world = cpu.out.size();
  const size_t steps = cpu.out[0].size();
  for (size_t k = 0; k < world; ++k) {
    for (size_t s = 0; s < steps; ++s) {
      const bool dense_step = static_cast<int64_t>(s) < opt.start_iter;
      const int64_t compressed_steps = static_cast<int64_t>(s) - opt.start_iter + 1;
      const PowerSgdReport& rc = cpu.reports[k][s];
      const PowerSgdReport& rg = gpu.reports[k][s];
      EXPECT_STREQ(rg.path, rc.path) << what << " step " << s;
      EXPECT_EQ(rg.bytes_sent, rc.bytes_sent) << what << " step " << s;
      EXPECT_EQ(rg.payload_bytes, rc.payload_bytes) << what << " step " << s;
      EXPECT_EQ(rg.compressed_matrices, rc.compressed_matrices) << what << " step " << s;
      EXPECT_EQ(rg.dense_elements, rc.dense_elements) << what << " step " << s;
      for (size_t t = 0; t < ts.size(); ++t) {
        const Mat& c = cpu.out[k][s][t];
        const Mat& g = gpu.out[k][s][t];
        const std::string at = what + " rank " + std::to_string(k) + " step " + std::to_string(s) +
                               " tensor " + std::to_string(t);
        if (dense_step || compressed_rank(ts[t].rows, ts[t].cols, opt) == 0) {
          EXPECT_TRUE(same_bits(g, c)) << at << " (dense): max diff " << max_abs_diff(g, c);
          continue;
        }
        const double tol =
            tolerance(ts[t].rows, ts[t].cols, compressed_steps) * scale_of(cpu, s, t);
        EXPECT_LE(max_abs_diff(g, c), tol) << at;
        if (k > 0) {
          EXPECT_TRUE(same_bits(g, gpu.out[0][s][t])) << at << ": ranks differ";
        }
      }
    }
    // The final state: the same keys and shapes, values within the tolerance.
    const StateDict& sc = cpu.state[k];
    const StateDict& sg = gpu.state[k];
    EXPECT_EQ(sg.ints, sc.ints) << what;
    ASSERT_EQ(sg.tensors.size(), sc.tensors.size()) << what;
    for (const auto& [key, tc] : sc.tensors) {
      ASSERT_EQ(sg.tensors.count(key), 1u) << what << " " << key;
      const StateTensor& tg = sg.tensors.at(key);
      EXPECT_EQ(tg.dtype, tc.dtype) << what << " " << key;
      EXPECT_EQ(tg.shape, tc.shape) << what << " " << key;
      if (key == "powersgd.shapes") {
        EXPECT_EQ(tg.bytes, tc.bytes) << what;
        continue;
      }
      const size_t t = std::stoul(key.substr(key.rfind('.') + 1));
      const bool is_q = key.rfind("powersgd.q.", 0) == 0;
      const double tol =
          tolerance(ts[t].rows, ts[t].cols, static_cast<int64_t>(steps) - opt.start_iter) *
          scale_of(cpu, steps - 1, t) * (is_q ? std::sqrt(static_cast<double>(ts[t].rows)) : 1.0);
      EXPECT_LE(max_abs_diff(floats_of(tg), floats_of(tc)), tol) << what << " " << key;
    }
  }
}

const std::vector<Tensor> kTensors = {
    {256, 256},  // square
    {1024, 64},  // tall
    {64, 1024},  // wide
    {1, 50},     // a bias: dense
    {8, 8},      // compressed at rank 1, dense from rank 2 (the rate test)
    {128, 96, Fill::kZeroColumn},
    {64, 48, Fill::kZero},  // P = 0: the epsilon path, then a redrawn Q every step
};

TEST(CudaPowerSgd, KeepsTheCpuRunWithinToleranceOverTenStepsOfErrorFeedback) {
  TERSE_SKIP_WITHOUT_GPU();
  for (const int rank : {1, 2, 4}) {
    for (const int world : {1, 2}) {
      PowerSgd::Options opt;  // error feedback and warm start on
      opt.rank = rank;
      opt.start_iter = 2;
      opt.seed = 5;
      const int64_t steps = 12;  // 2 dense, 10 compressed
      const Outputs cpu = run_steps(false, world, kTensors, opt, steps, 100 + rank);
      const Outputs gpu = run_steps(true, world, kTensors, opt, steps, 100 + rank);
      expect_close(cpu, gpu, kTensors, opt,
                   "rank " + std::to_string(rank) + " world " + std::to_string(world));
    }
  }
}

TEST(CudaPowerSgd, MatchesTheCpuForEveryOptionCombination) {
  TERSE_SKIP_WITHOUT_GPU();
  for (const bool ef : {false, true}) {
    for (const bool warm : {false, true}) {
      for (const double eps : {1e-8, 0.0}) {
        PowerSgd::Options opt;
        opt.rank = 2;
        opt.start_iter = 0;
        opt.error_feedback = ef;
        opt.warm_start = warm;
        opt.orthogonalization_epsilon = eps;
        opt.seed = 9;
        // eps = 0 refuses an all-zero matrix (tested below).
        std::vector<Tensor> ts(kTensors.begin(), kTensors.end() - (eps == 0 ? 1 : 0));
        const std::string what = std::string("ef ") + (ef ? "on" : "off") + " warm start " +
                                 (warm ? "on" : "off") + " eps " + std::to_string(eps);
        const Outputs cpu = run_steps(false, 2, ts, opt, 5, 7);
        const Outputs gpu = run_steps(true, 2, ts, opt, 5, 7);
        expect_close(cpu, gpu, ts, opt, what);
      }
    }
  }
}

TEST(CudaPowerSgd, CompressesVectorsAtRankOneWhenTheRateAllows) {
  TERSE_SKIP_WITHOUT_GPU();
  // min_compression_rate 0.5: a 1 x m or m x 1 matrix qualifies at r' = 1 (P or Q is 1 x 1).
  const std::vector<Tensor> ts = {{1, 300}, {300, 1}, {2, 2}, {3, 700}};
  for (const int rank : {1, 4}) {
    PowerSgd::Options opt;
    opt.rank = rank;
    opt.start_iter = 0;
    opt.min_compression_rate = 0.5;
    const Outputs cpu = run_steps(false, 1, ts, opt, 4, 3);
    const Outputs gpu = run_steps(true, 1, ts, opt, 4, 3);
    // 2 x 2 at r' = 2 fails the rate test: (2 + 2) 2 0.5 = 4 is not below 4.
    EXPECT_EQ(cpu.reports[0][0].compressed_matrices, rank == 1 ? 4 : 3);
    expect_close(cpu, gpu, ts, opt, "vectors rank " + std::to_string(rank));
  }
}

// One rank: steps [0, split) on one device, the state_dict into a new PowerSgd, steps
// [split, steps) on the other (to_gpu: CPU then GPU); the outputs of the second part.
std::vector<std::vector<Mat>> resumed(bool first_gpu, bool second_gpu,
                                      const std::vector<Tensor>& ts, const PowerSgd::Options& opt,
                                      int64_t split, int64_t steps, uint64_t salt,
                                      StateDict* saved = nullptr) {
  std::vector<std::vector<Mat>> outs;
  run_local_ranks(1, [&](Communicator& comm) {
    auto step = [&](PowerSgd& algo, bool gpu, int64_t s) {
      std::vector<Mat> g = make_grads(ts, salt, 0, s);
      if (gpu) {
        const DeviceGrads d(g, ts, kDevice);
        algo.run(d.views(), s);
        return d.to_host();
      }
      algo.run(host_views(g, ts), s);
      return g;
    };
    PowerSgd a(comm, opt);
    for (int64_t s = 0; s < split; ++s) step(a, first_gpu, s);
    const StateDict sd = a.state_dict();
    if (saved != nullptr) *saved = sd;
    PowerSgd b(comm, opt);
    b.load_state_dict(sd);
    for (int64_t s = split; s < steps; ++s) outs.push_back(step(b, second_gpu, s));
  });
  return outs;
}

TEST(CudaPowerSgd, CheckpointsMoveBetweenCpuAndGpu) {
  TERSE_SKIP_WITHOUT_GPU();
  PowerSgd::Options opt;
  opt.rank = 2;
  opt.start_iter = 1;
  const int64_t split = 4, steps = 8;
  const Outputs cpu = run_steps(false, 1, kTensors, opt, steps, 11);
  StateDict from_gpu, from_cpu;
  const auto gpu_gpu = resumed(true, true, kTensors, opt, split, steps, 11);
  const auto gpu_cpu = resumed(true, false, kTensors, opt, split, steps, 11, &from_gpu);
  const auto cpu_gpu = resumed(false, true, kTensors, opt, split, steps, 11, &from_cpu);
  // A GPU state_dict has the CPU's keys, shapes and dtypes.
  ASSERT_EQ(from_gpu.tensors.size(), from_cpu.tensors.size());
  for (const auto& [key, t] : from_cpu.tensors) {
    ASSERT_EQ(from_gpu.tensors.count(key), 1u) << key;
    EXPECT_EQ(from_gpu.tensors.at(key).shape, t.shape) << key;
    EXPECT_EQ(from_gpu.tensors.at(key).dtype, t.dtype) << key;
  }
  EXPECT_EQ(from_gpu.ints, from_cpu.ints);
  // The GPU continues a GPU checkpoint exactly as the uninterrupted GPU run.
  const Outputs gpu = run_steps(true, 1, kTensors, opt, steps, 11);
  for (int64_t s = split; s < steps; ++s) {
    for (size_t t = 0; t < kTensors.size(); ++t) {
      const auto i = static_cast<size_t>(s - split);
      EXPECT_TRUE(same_bits(gpu_gpu[i][t], gpu.out[0][static_cast<size_t>(s)][t]))
          << "GPU -> GPU step " << s << " tensor " << t;
      const double tol = tolerance(kTensors[t].rows, kTensors[t].cols, s - opt.start_iter + 1) *
                         scale_of(cpu, static_cast<size_t>(s), t);
      const Mat& want = cpu.out[0][static_cast<size_t>(s)][t];
      EXPECT_LE(max_abs_diff(gpu_cpu[i][t], want), tol) << "GPU -> CPU step " << s << " " << t;
      EXPECT_LE(max_abs_diff(cpu_gpu[i][t], want), tol) << "CPU -> GPU step " << s << " " << t;
    }
  }
}

TEST(CudaPowerSgd, StateFollowsTheViewsFromCpuToGpuAndBack) {
  TERSE_SKIP_WITHOUT_GPU();
  PowerSgd::Options opt;
  opt.rank = 4;
  opt.start_iter = 0;
  const Outputs cpu = run_steps(false, 1, kTensors, opt, 6, 13);
  run_local_ranks(1, [&](Communicator& comm) {
    PowerSgd algo(comm, opt);
    for (int64_t s = 0; s < 6; ++s) {
      const bool gpu = s == 2 || s == 3;  // CPU, CPU, GPU, GPU, CPU, CPU
      std::vector<Mat> g = make_grads(kTensors, 13, 0, s);
      std::vector<Mat> out;
      if (gpu) {
        const DeviceGrads d(g, kTensors, kDevice);
        algo.run(d.views(), s);
        out = d.to_host();
        EXPECT_EQ(algo.state_device(), Device::cuda(kDevice));
      } else {
        algo.run(host_views(g, kTensors), s);
        out = g;
        EXPECT_TRUE(algo.state_device().is_cpu());
      }
      for (size_t t = 0; t < kTensors.size(); ++t) {
        const double tol = tolerance(kTensors[t].rows, kTensors[t].cols, s + 1) *
                           scale_of(cpu, static_cast<size_t>(s), t);
        EXPECT_LE(max_abs_diff(out[t], cpu.out[0][static_cast<size_t>(s)][t]), tol)
            << "step " << s << " tensor " << t;
      }
      if (s == 0) {
        EXPECT_GT(algo.state_bytes(), 0u);
      }
    }
  });
}

using test_support::Outcome;

// Every rank's outcome (tests/support/rank_outcomes.h), its ranks timing out after 20 s.
std::vector<Outcome> run_each(int world, const std::function<void(Communicator&)>& fn) {
  return test_support::run_each(world, std::chrono::milliseconds(20000), fn);
}

TEST(CudaPowerSgd, RefusesNonFiniteGradientsOnEveryRankAndChangesNothing) {
  TERSE_SKIP_WITHOUT_GPU();
  PowerSgd::Options opt;
  opt.rank = 2;
  opt.start_iter = 2;
  // Tensor 1 (1024 x 64) compressed; tensor 3 (1 x 50) dense. Bad step 1 is dense, bad step 3
  // compressed, after a compressed step 2 that leaves a state to keep.
  for (const int64_t bad_step : {int64_t{1}, int64_t{3}}) {
    for (const size_t bad_tensor : {size_t{1}, size_t{3}}) {
      std::mutex mu;
      bool unchanged = true;
      const auto outcomes = run_each(2, [&](Communicator& comm) {
        PowerSgd algo(comm, opt);
        for (int64_t s = 0; s < bad_step; ++s) {
          const DeviceGrads d(make_grads(kTensors, 17, comm.rank(), s), kTensors, kDevice);
          algo.run(d.views(), s);
        }
        std::vector<Mat> g = make_grads(kTensors, 17, comm.rank(), bad_step);
        if (comm.rank() == 1) g[bad_tensor][5] = std::numeric_limits<float>::quiet_NaN();
        const DeviceGrads d(g, kTensors, kDevice);
        const StateDict before = algo.state_dict();
        try {
          algo.run(d.views(), bad_step);
        } catch (...) {
          const std::vector<Mat> after = d.to_host();
          std::lock_guard<std::mutex> lock(mu);
          for (size_t t = 0; t < g.size(); ++t) unchanged = unchanged && same_bits(after[t], g[t]);
          unchanged = unchanged && algo.state_dict() == before;
          throw;
        }
      });
      const std::string what =
          "step " + std::to_string(bad_step) + " tensor " + std::to_string(bad_tensor);
      for (const Outcome& o : outcomes) {
        EXPECT_EQ(o.type, "NumericalError") << what << ": " << o.what;
        EXPECT_THAT(o.what, HasSubstr("rank 1 tensor " + std::to_string(bad_tensor))) << what;
      }
      EXPECT_TRUE(unchanged) << what;
    }
  }
}

// The CPU's and the GPU's outcome of one step after loading `state` (and running nothing else).
std::vector<Outcome> after_loading(const PowerSgd::Options& opt, const std::vector<Tensor>& ts,
                                   const StateDict& state, const std::vector<Mat>& grads,
                                   int64_t step) {
  std::vector<Outcome> both;
  for (const bool gpu : {false, true}) {
    const auto o = run_each(1, [&](Communicator& comm) {
      PowerSgd algo(comm, opt);
      // One step first, so that the state lives where the views are, then the load.
      std::vector<Mat> g0 = make_grads(ts, 1, 0, 0);
      std::vector<Mat> g = grads;
      if (gpu) {
        const DeviceGrads d0(g0, ts, kDevice);
        algo.run(d0.views(), 0);
        algo.load_state_dict(state);
        const StateDict before = algo.state_dict();
        const DeviceGrads d(g, ts, kDevice);
        try {
          algo.run(d.views(), step);
        } catch (...) {
          EXPECT_TRUE(algo.state_dict() == before) << "GPU state changed";
          const std::vector<Mat> after = d.to_host();
          for (size_t t = 0; t < g.size(); ++t) EXPECT_TRUE(same_bits(after[t], g[t])) << t;
          throw;
        }
      } else {
        algo.run(host_views(g0, ts), 0);
        algo.load_state_dict(state);
        algo.run(host_views(g, ts), step);
      }
    });
    both.push_back(o[0]);
  }
  return both;
}

TEST(CudaPowerSgd, CatchesGradientPlusErrorOverflowingLikeTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  PowerSgd::Options opt;
  opt.start_iter = 0;
  const std::vector<Tensor> ts = {{64, 80}, {1, 10}};
  // A real state, then e[0] = 3e38: finite, but M + e overflows where M is 3e38 too. The GPU
  // learns of |e| >= 2^103 from the loaded state and checks M + e element by element.
  StateDict state;
  run_local_ranks(1, [&](Communicator& comm) {
    PowerSgd algo(comm, opt);
    std::vector<Mat> g = make_grads(ts, 2, 0, 0);
    algo.run(host_views(g, ts), 0);
    state = algo.state_dict();
  });
  Mat e = floats_of(state.tensor("powersgd.error.0"));
  e[10] = 3e38f;
  std::memcpy(state.tensors["powersgd.error.0"].bytes.data(), e.data(), e.size() * sizeof(float));
  std::vector<Mat> g = make_grads(ts, 2, 0, 1);
  g[0][10] = 3e38f;
  for (const Outcome& o : after_loading(opt, ts, state, g, 1)) {
    EXPECT_EQ(o.type, "NumericalError") << o.what;
    EXPECT_THAT(o.what, HasSubstr("rank 0 tensor 0")) << o.what;
  }
  // -3e38 instead: M + e = 0 there, no overflow; both run.
  g[0][10] = -3e38f;
  for (const Outcome& o : after_loading(opt, ts, state, g, 1)) EXPECT_EQ(o.type, "") << o.what;
}

TEST(CudaPowerSgd, EpsilonZeroRefusesAnAllZeroMatrixLikeTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  PowerSgd::Options opt;
  opt.start_iter = 1;  // a dense step 0 first, so the state to keep is a validated one
  opt.orthogonalization_epsilon = 0.0;
  const std::vector<Tensor> ts = {{64, 80}, {40, 30, Fill::kZero}};
  for (const bool gpu : {false, true}) {
    const auto o = run_each(1, [&](Communicator& comm) {
      PowerSgd algo(comm, opt);
      std::vector<Mat> g0 = make_grads(ts, 3, 0, 0), g = make_grads(ts, 3, 0, 1);
      if (!gpu) {
        algo.run(host_views(g0, ts), 0);
        algo.run(host_views(g, ts), 1);
        return;
      }
      const DeviceGrads d0(g0, ts, kDevice), d(g, ts, kDevice);
      algo.run(d0.views(), 0);
      const StateDict before = algo.state_dict();
      try {
        algo.run(d.views(), 1);
      } catch (...) {
        EXPECT_TRUE(algo.state_dict() == before) << "GPU state changed";
        const std::vector<Mat> after = d.to_host();
        for (size_t t = 0; t < g.size(); ++t) EXPECT_TRUE(same_bits(after[t], g[t])) << t;
        throw;
      }
    });
    EXPECT_EQ(o[0].type, "NumericalError") << o[0].what;
    EXPECT_THAT(o[0].what, HasSubstr("orthogonalizing P of tensor 1 (40x30)")) << o[0].what;
  }
}

// ---- argument checks (no GPU needed) ------------------------------------------------------------

TEST(CudaPowerSgd, RefusesViewsOfMixedDevicesOrOfTheWrongMemory) {
  PowerSgd::Options opt;
  opt.start_iter = 0;
  Mat a(64 * 80, 1.0f), b(10, 1.0f);
  // A CUDA view of host memory: refused before any GPU work (also where there is no GPU).
  auto o = run_each(1, [&](Communicator& comm) {
    PowerSgd algo(comm, opt);
    algo.run({{a.data(), 64, 80, Device::cuda(0)}, {b.data(), 1, 10, Device::cuda(0)}}, 0);
  });
  EXPECT_EQ(o[0].type, "InvalidArgument") << o[0].what;
  EXPECT_THAT(o[0].what, HasSubstr("tensor 0 (64x80) is a view on cuda:0 but its data is not "
                                   "memory of that GPU"));
  o = run_each(1, [&](Communicator& comm) {
    PowerSgd algo(comm, opt);
    algo.run({{a.data(), 64, 80}, {b.data(), 1, 10, Device::cuda(0)}}, 0);
  });
  EXPECT_EQ(o[0].type, "InvalidArgument") << o[0].what;
  EXPECT_THAT(o[0].what, HasSubstr("tensor 1 is on cuda:0 but tensor 0 on cpu"));
}

}  // namespace
}  // namespace terse::psgd_test

#include "terse/compress/error_feedback.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "terse/core/error.h"
#include "terse/core/philox.h"

namespace terse {
namespace {

using Vec = std::vector<float>;

Vec random_vec(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  PhiloxStream rng(seed, 11);
  Vec v(n);
  for (auto& x : v) x = lo + (hi - lo) * rng.uniform();
  return v;
}

TensorView view(Vec& v) { return TensorView::of(v.data(), static_cast<int64_t>(v.size())); }

std::shared_ptr<const Compressor> topk(const std::string& density) {
  return std::shared_ptr<const Compressor>(make_compressor("topk:density=" + density));
}

std::vector<std::unique_ptr<ErrorFeedback>> make_workers(const std::string& name,
                                                         std::shared_ptr<const Compressor> c, int n,
                                                         std::vector<double> l = {}) {
  std::vector<std::unique_ptr<ErrorFeedback>> w;
  for (int i = 0; i < n; ++i) {
    ErrorFeedbackOptions o;
    o.world_size = n;
    o.rank = i;
    o.smoothness = l;
    w.push_back(make_error_feedback(name, c, o));
  }
  return w;
}

// One simulated allgather round: every worker encodes its gradient, every worker aggregates all
// payloads; checks that all ranks agree bit for bit and returns rank 0's direction.
Vec round(std::vector<std::unique_ptr<ErrorFeedback>>& workers, std::vector<Vec>& grads, int bucket,
          uint64_t step) {
  const size_t n = workers.size();
  std::vector<std::vector<uint8_t>> bufs(n);
  std::vector<PayloadView> views(n);
  for (size_t i = 0; i < n; ++i) {
    bufs[i].resize(workers[i]->max_encoded_bytes(static_cast<int64_t>(grads[i].size())));
    const size_t len =
        workers[i]->encode(bucket, view(grads[i]), step, bufs[i].data(), bufs[i].size());
    views[i] = PayloadView{bufs[i].data(), len};
  }
  Vec dir0(grads[0].size());
  for (size_t i = 0; i < n; ++i) {
    Vec dir(grads[0].size(), -7.0f);
    workers[i]->decode_and_aggregate(bucket, views, view(dir));
    if (i == 0) {
      dir0 = dir;
    } else {
      EXPECT_EQ(dir, dir0) << "rank " << i << " disagrees with rank 0";
    }
  }
  return dir0;
}

bool same_bits(const Vec& a, const Vec& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The receiver side of EF21 / EF21-W as first written: decode every payload into a zero-filled
// dense buffer, add w_i times all of it into a sum (worker order), then g += sum; out = g.
struct DenseEf21Reference {
  Vec agg;
  Vec aggregate(const Compressor& c, const std::vector<PayloadView>& payloads,
                const std::vector<double>& weights) {
    const size_t d = agg.size();
    Vec sum(d, 0.0f), scratch(d);
    for (size_t i = 0; i < payloads.size(); ++i) {
      c.decode(payloads[i].data, payloads[i].len, view(scratch), false);
      const auto w = static_cast<float>(weights[i]);
      for (size_t j = 0; j < d; ++j) sum[j] += w * scratch[j];
    }
    for (size_t j = 0; j < d; ++j) agg[j] += sum[j];
    return agg;
  }
};

// Gradients with exact +0 and -0 entries and, between workers 0 and 1, exact negatives, so the
// decoded sums hit signed zeros and exact cancellation.
std::vector<Vec> signed_zero_grads(int n, size_t d, uint64_t seed) {
  std::vector<Vec> g;
  for (int i = 0; i < n; ++i) {
    Vec v = random_vec(d, seed + static_cast<uint64_t>(i));
    for (size_t j = 0; j < d; ++j) {
      if (j % 5 == 1) v[j] = -0.0f;
      if (j % 5 == 2) v[j] = 0.0f;
      if (i == 1 && j % 3 == 0) v[j] = -g[0][j];
    }
    g.push_back(v);
  }
  return g;
}

// EF21 and EF21-W aggregates equal the dense reference bit for bit over several rounds, at
// N = 1, 3, 8, for sparse (including values that are signed zeros) and dense compressors.
TEST(ErrorFeedbackTest, Ef21AggregateEqualsDenseReferenceBitForBit) {
  const char* specs[] = {"topk:density=0.1",
                         "topk:density=0.1,values=f16",
                         "topk:density=0.8",  // selects zeros of the signed-zero gradients
                         "randk:density=0.2",
                         "randk:density=0.2,send_indices=true",
                         "dgc:density=0.1",
                         "sign",
                         "onebit",
                         "qsgd:levels=127",
                         "terngrad",
                         "fp16"};
  const size_t d = 203;
  for (const char* spec : specs) {
    for (const char* kind : {"ef21", "ef21w"}) {
      for (const int n : {1, 3, 8}) {
        std::vector<double> l;
        if (std::string(kind) == "ef21w") {
          for (int i = 0; i < n; ++i) l.push_back(1.0 + 0.7 * i * i);
        }
        const std::shared_ptr<const Compressor> c(make_compressor(spec));
        auto workers = make_workers(kind, c, n, l);
        DenseEf21Reference ref{Vec(d, 0.0f)};
        for (uint64_t step = 0; step < 4; ++step) {
          std::vector<Vec> grads =
              step % 2 == 0 ? signed_zero_grads(n, d, 300 + 10 * step) : std::vector<Vec>();
          for (int i = 0; step % 2 == 1 && i < n; ++i)
            grads.push_back(random_vec(d, 400 + 10 * step + static_cast<uint64_t>(i)));
          std::vector<std::vector<uint8_t>> bufs(static_cast<size_t>(n));
          std::vector<PayloadView> views;
          for (size_t i = 0; i < bufs.size(); ++i) {
            bufs[i].resize(workers[i]->max_encoded_bytes(static_cast<int64_t>(d)));
            const size_t len =
                workers[i]->encode(2, view(grads[i]), step, bufs[i].data(), bufs[i].size());
            views.push_back(PayloadView{bufs[i].data(), len});
          }
          const Vec expect = ref.aggregate(*c, views, workers[0]->weights());
          for (size_t r = 0; r < workers.size(); ++r) {
            Vec out(d, -7.0f);
            workers[r]->decode_and_aggregate(2, views, view(out));
            ASSERT_TRUE(same_bits(out, expect))
                << spec << " " << kind << " N=" << n << " step " << step << " rank " << r;
          }
        }
      }
    }
  }
}

// A corrupt payload from worker 1 of 3 (after worker 0's payload was decoded) throws
// CorruptData and leaves out, the kept aggregate and every later result as if the call never
// happened.
TEST(ErrorFeedbackTest, Ef21CorruptPayloadInTheMiddleLeavesAggregateUnchanged) {
  const size_t d = 101;  // indices < 128: one varint byte each; sign and qsgd:levels=5 pad bits
  for (const char* spec : {"topk:density=0.1", "sign", "qsgd:levels=5"}) {
    for (const char* kind : {"ef21", "ef21w"}) {
      const std::vector<double> l =
          std::string(kind) == "ef21w" ? std::vector<double>{1, 2, 4} : std::vector<double>{};
      const std::shared_ptr<const Compressor> c(make_compressor(spec));
      auto hit = make_workers(kind, c, 3, l);
      auto twin = make_workers(kind, c, 3, l);
      auto grads_at = [](uint64_t step) {
        std::vector<Vec> g;
        for (int i = 0; i < 3; ++i)
          g.push_back(random_vec(d, 600 + 10 * step + static_cast<uint64_t>(i)));
        return g;
      };
      for (uint64_t s = 0; s < 2; ++s) {
        auto g1 = grads_at(s), g2 = grads_at(s);
        EXPECT_EQ(round(hit, g1, 0, s), round(twin, g2, 0, s));
      }
      for (uint64_t s = 2; s < 4; ++s) {
        std::vector<Vec> g = grads_at(s), g2 = grads_at(s);
        std::vector<std::vector<uint8_t>> bufs(3), bufs2(3);
        std::vector<PayloadView> views, views2;
        for (size_t i = 0; i < 3; ++i) {
          bufs[i].resize(hit[i]->max_encoded_bytes(static_cast<int64_t>(d)));
          bufs2[i].resize(bufs[i].size());
          const size_t len = hit[i]->encode(0, view(g[i]), s, bufs[i].data(), bufs[i].size());
          const size_t len2 = twin[i]->encode(0, view(g2[i]), s, bufs2[i].data(), bufs2[i].size());
          views.push_back(PayloadView{bufs[i].data(), len});
          views2.push_back(PayloadView{bufs2[i].data(), len2});
        }
        // topk: the last index delta becomes 0 (not increasing); sign, qsgd: a padding bit set.
        std::vector<uint8_t> bad(views[1].data, views[1].data + views[1].len);
        if (std::string(spec) == "topk:density=0.1") {
          bad.back() = 0;
        } else {
          bad.back() |= 1;
        }
        Vec probe(d);
        ASSERT_THROW(c->decode(bad.data(), bad.size(), view(probe), true), CorruptData) << spec;
        std::vector<PayloadView> corrupt = views;
        corrupt[1] = PayloadView{bad.data(), bad.size()};
        for (size_t r = 0; r < 3; ++r) {
          const StateDict before = hit[r]->state_dict();
          Vec out(d, -7.0f);
          EXPECT_THROW(hit[r]->decode_and_aggregate(0, corrupt, view(out)), CorruptData)
              << spec << " " << kind << " rank " << r;
          EXPECT_EQ(out, Vec(d, -7.0f)) << spec << " " << kind;
          EXPECT_EQ(hit[r]->state_dict(), before) << spec << " " << kind;
          Vec good(d), good2(d);
          hit[r]->decode_and_aggregate(0, views, view(good));
          twin[r]->decode_and_aggregate(0, views2, view(good2));
          EXPECT_TRUE(same_bits(good, good2)) << spec << " " << kind << " step " << s;
        }
      }
    }
  }
}

TEST(ErrorFeedbackTest, Ef14IdentityIsBitExactWithTopK) {
  auto c = topk("0.1");
  auto ef = make_error_feedback("ef14", c);
  const size_t d = 257;
  Vec old_residual(d, 0.0f);
  for (uint64_t step = 0; step < 20; ++step) {
    Vec g = random_vec(d, 100 + step);
    std::vector<uint8_t> buf(ef->max_encoded_bytes(static_cast<int64_t>(d)));
    const size_t len = ef->encode(3, view(g), step, buf.data(), buf.size());
    Vec decoded(d);
    c->decode(buf.data(), len, view(decoded), false);
    const StateDict sd = ef->state_dict();
    Vec residual(d);
    sd.tensor("ef.residual.3").copy_to(view(residual), "residual");
    size_t nonzero = 0;
    for (size_t j = 0; j < d; ++j) {
      const float expect = g[j] + old_residual[j];
      ASSERT_EQ(decoded[j] + residual[j], expect) << "step " << step << " element " << j;
      if (decoded[j] != 0.0f) ++nonzero;
    }
    EXPECT_EQ(nonzero, 25u);  // floor(0.1 * 257) selected, the rest stays in the residual
    old_residual = residual;
  }
  EXPECT_EQ(ef->state_bytes(), d * sizeof(float));
}

TEST(ErrorFeedbackTest, Ef21WithIdentityCompressorEqualsAveraging) {
  const int n = 4;
  const size_t d = 100;
  auto workers = make_workers("ef21", topk("1"), n);
  for (uint64_t step = 0; step < 10; ++step) {
    std::vector<Vec> grads;
    for (int i = 0; i < n; ++i)
      grads.push_back(random_vec(d, 1000 * step + static_cast<uint64_t>(i)));
    const Vec dir = round(workers, grads, 0, step);
    for (size_t j = 0; j < d; ++j) {
      const double mean =
          (static_cast<double>(grads[0][j]) + grads[1][j] + grads[2][j] + grads[3][j]) / n;
      ASSERT_NEAR(dir[j], mean, 1e-5) << "step " << step << " element " << j;
    }
  }
  // Residual g_i plus aggregate g, one bucket of d floats each, per worker.
  EXPECT_EQ(workers[0]->state_bytes(), 2 * d * sizeof(float));
}

TEST(ErrorFeedbackTest, NoneAndEf14AggregateIsTheMeanOfDecodedPayloads) {
  const int n = 3;
  const size_t d = 64;
  for (const char* name : {"none", "ef14"}) {
    auto workers = make_workers(name, topk("1"), n);
    std::vector<Vec> grads;
    for (int i = 0; i < n; ++i) grads.push_back(random_vec(d, 77 + static_cast<uint64_t>(i)));
    const Vec dir = round(workers, grads, 5, 0);
    for (size_t j = 0; j < d; ++j) {
      EXPECT_NEAR(dir[j], (grads[0][j] + grads[1][j] + grads[2][j]) / 3.0f, 1e-6) << name;
    }
  }
}

// Heterogeneous quadratic f_i(x) = 1/2 sum_j a_ij (x_j - b_ij)^2, f = mean_i f_i, N = 4 workers.
struct Quadratic {
  static constexpr int kWorkers = 4;
  static constexpr size_t kDim = 20;
  std::vector<Vec> a, b;
  Vec x_star;
  Quadratic() {
    for (int i = 0; i < kWorkers; ++i) {
      // Worker i's curvature scale grows with i, so the L_i differ (EF21-W weights them).
      const float s = static_cast<float>(1 << i);
      a.push_back(random_vec(kDim, 10 + static_cast<uint64_t>(i), 0.5f * s, 1.0f * s));
      b.push_back(random_vec(kDim, 20 + static_cast<uint64_t>(i), -3.0f, 3.0f));
    }
    x_star.assign(kDim, 0.0f);
    for (size_t j = 0; j < kDim; ++j) {
      double num = 0, den = 0;
      for (int i = 0; i < kWorkers; ++i) {
        num += static_cast<double>(a[static_cast<size_t>(i)][j]) * b[static_cast<size_t>(i)][j];
        den += a[static_cast<size_t>(i)][j];
      }
      x_star[j] = static_cast<float>(num / den);
    }
  }
  Vec grad_i(int i, const Vec& x) const {
    Vec g(kDim);
    for (size_t j = 0; j < kDim; ++j) {
      g[j] = a[static_cast<size_t>(i)][j] * (x[j] - b[static_cast<size_t>(i)][j]);
    }
    return g;
  }
  double grad_sqnorm(const Vec& x) const {
    double s = 0;
    for (size_t j = 0; j < kDim; ++j) {
      double gj = 0;
      for (int i = 0; i < kWorkers; ++i) gj += grad_i(i, x)[j];
      gj /= kWorkers;
      s += gj * gj;
    }
    return s;
  }
  std::vector<double> smoothness() const {
    std::vector<double> l;
    for (const Vec& ai : a) {
      float m = 0;
      for (float v : ai) m = std::max(m, v);
      l.push_back(m);
    }
    return l;
  }
};

// Runs `steps` of x <- x - gamma * direction and returns ||grad f(x)||^2 at the end.
double run_quadratic(const std::string& name, double gamma, int steps, std::vector<double> l = {}) {
  Quadratic q;
  auto workers = make_workers(name, topk("0.1"), Quadratic::kWorkers, l);
  Vec x(Quadratic::kDim, 0.0f);
  for (int t = 0; t < steps; ++t) {
    std::vector<Vec> grads;
    for (int i = 0; i < Quadratic::kWorkers; ++i) grads.push_back(q.grad_i(i, x));
    const Vec dir = round(workers, grads, 0, static_cast<uint64_t>(t));
    for (size_t j = 0; j < x.size(); ++j) x[j] -= static_cast<float>(gamma) * dir[j];
  }
  return q.grad_sqnorm(x);
}

TEST(ErrorFeedbackTest, Ef21ConvergesOnHeterogeneousQuadraticWhereTopKAloneStalls) {
  const double gamma = 0.05;
  const int steps = 3000;
  const double start = Quadratic().grad_sqnorm(Vec(Quadratic::kDim, 0.0f));
  const double none = run_quadratic("none", gamma, steps);
  const double ef14 = run_quadratic("ef14", gamma, steps);
  const double ef21 = run_quadratic("ef21", gamma, steps);
  const double ef21w = run_quadratic("ef21w", gamma, steps, Quadratic().smoothness());
  RecordProperty("start", std::to_string(start));
  RecordProperty("none", std::to_string(none));
  RecordProperty("ef14", std::to_string(ef14));
  RecordProperty("ef21", std::to_string(ef21));
  RecordProperty("ef21w", std::to_string(ef21w));
  std::printf("||grad f||^2: start %.3e none %.3e ef14 %.3e ef21 %.3e ef21w %.3e\n", start, none,
              ef14, ef21, ef21w);
  EXPECT_GT(start, 1.0);
  EXPECT_GT(none, 1e-3);  // Top-k without feedback stops far from x*
  EXPECT_LT(ef21, 1e-8);
  EXPECT_LT(ef21w, 1e-8);
  // EF14 with a constant step only reaches an O(gamma) neighbourhood here: at x* the workers'
  // gradients do not vanish, so their residuals keep cycling. Smaller steps shrink it.
  EXPECT_LT(ef14, none / 4);
  const double ef14_small = run_quadratic("ef14", gamma / 10, steps);
  std::printf("ef14 at gamma/10: %.3e\n", ef14_small);
  EXPECT_LT(ef14_small, ef14 / 20);
  EXPECT_GT(ef14_small, 1e-4);
}

TEST(ErrorFeedbackTest, Ef21WTheoryStepBeatsEf21TheoryStepOnHeterogeneousQuadratic) {
  const Quadratic q;
  double l = 0;  // f is diagonal: L = max_j mean_i a_ij
  for (size_t j = 0; j < Quadratic::kDim; ++j) {
    double m = 0;
    for (const Vec& ai : q.a) m += ai[j];
    l = std::max(l, m / Quadratic::kWorkers);
  }
  const double alpha = 0.1;  // Top-k with k = 2 of d = 20
  const double g21 = ef21_step_size(ErrorFeedbackKind::kEF21, alpha, l, q.smoothness());
  const double g21w = ef21_step_size(ErrorFeedbackKind::kEF21W, alpha, l, q.smoothness());
  const double ef21 = run_quadratic("ef21", g21, 1000);
  const double ef21w = run_quadratic("ef21w", g21w, 1000, q.smoothness());
  std::printf("theory steps: ef21 %.4g -> %.3e, ef21w %.4g -> %.3e\n", g21, ef21, g21w, ef21w);
  EXPECT_GT(g21w, g21 * 1.2);
  EXPECT_LT(ef21w, ef21);
}

TEST(ErrorFeedbackTest, Ef21WWeightsFollowSmoothnessAndEqualWeightsMatchEf21) {
  ErrorFeedbackOptions o;
  o.world_size = 4;
  o.rank = 2;
  o.smoothness = {1.0, 2.0, 3.0, 4.0};
  auto ef = make_error_feedback("ef21w", topk("0.5"), o);
  ASSERT_EQ(ef->weights().size(), 4u);
  EXPECT_DOUBLE_EQ(ef->weights()[0], 0.1);
  EXPECT_DOUBLE_EQ(ef->weights()[3], 0.4);

  auto a = make_workers("ef21", topk("0.2"), 4);
  auto b = make_workers("ef21w", topk("0.2"), 4, {5.0, 5.0, 5.0, 5.0});
  for (uint64_t step = 0; step < 5; ++step) {
    std::vector<Vec> grads;
    for (int i = 0; i < 4; ++i)
      grads.push_back(random_vec(50, 500 + 10 * step + static_cast<uint64_t>(i)));
    std::vector<Vec> grads2 = grads;
    EXPECT_EQ(round(a, grads, 1, step), round(b, grads2, 1, step));
  }
}

TEST(ErrorFeedbackTest, StateDictRoundTripThenContinuingEqualsUninterrupted) {
  for (const char* name : {"ef14", "ef21", "ef21w"}) {
    const std::vector<double> l =
        std::string(name) == "ef21w" ? std::vector<double>{1, 2, 3} : std::vector<double>{};
    auto grads_at = [](uint64_t step) {
      std::vector<Vec> g;
      for (int i = 0; i < 3; ++i)
        g.push_back(random_vec(40, 900 + 7 * step + static_cast<uint64_t>(i)));
      return g;
    };
    auto straight = make_workers(name, topk("0.1"), 3, l);
    auto first = make_workers(name, topk("0.1"), 3, l);
    for (uint64_t s = 0; s < 6; ++s) {
      auto g1 = grads_at(s), g2 = grads_at(s);
      round(straight, g1, 0, s);
      round(first, g2, 0, s);
    }
    auto resumed = make_workers(name, topk("0.1"), 3, l);
    for (size_t i = 0; i < 3; ++i) {
      const StateDict sd = first[i]->state_dict();
      resumed[i]->load_state_dict(sd);
      EXPECT_EQ(resumed[i]->state_dict(), sd) << name;
      EXPECT_GT(resumed[i]->state_bytes(), 0u);
    }
    for (uint64_t s = 6; s < 12; ++s) {
      auto g1 = grads_at(s), g2 = grads_at(s);
      EXPECT_EQ(round(straight, g1, 0, s), round(resumed, g2, 0, s)) << name << " step " << s;
    }
  }
}

TEST(ErrorFeedbackTest, Ef21TheoryStepSize) {
  // Reference values from the spec's formula evaluated in Python (double).
  EXPECT_NEAR(ef21_step_size(ErrorFeedbackKind::kEF21, 0.1, 1.0, {1.0, 1.0}), 0.051316701949486225,
              1e-15);
  EXPECT_NEAR(ef21_step_size(ErrorFeedbackKind::kEF21, 0.1, 2.5, {1.0, 2.0, 3.0, 4.0}),
              0.01882236828820375, 1e-15);
  // EF21-W uses the arithmetic mean of L_i: a larger step under heterogeneity.
  EXPECT_NEAR(ef21_step_size(ErrorFeedbackKind::kEF21W, 0.1, 2.5, {1.0, 2.0, 3.0, 4.0}),
              0.02052668077979449, 1e-15);
  EXPECT_DOUBLE_EQ(ef21_step_size(ErrorFeedbackKind::kEF21, 1.0, 4.0, {4.0}), 0.25);
  EXPECT_THROW(ef21_step_size(ErrorFeedbackKind::kEF14, 0.1, 1.0, {1.0}), InvalidArgument);
  EXPECT_THROW(ef21_step_size(ErrorFeedbackKind::kEF21, 0.0, 1.0, {1.0}), InvalidArgument);
  EXPECT_THROW(ef21_step_size(ErrorFeedbackKind::kEF21, 0.1, -1.0, {1.0}), InvalidArgument);
  EXPECT_THROW(ef21_step_size(ErrorFeedbackKind::kEF21, 0.1, 1.0, {}), InvalidArgument);
  EXPECT_THROW(ef21_step_size(ErrorFeedbackKind::kEF21W, 0.1, 1.0, {1.0, 0.0}), InvalidArgument);
}

TEST(ErrorFeedbackTest, BadNamesOptionsAndSizesThrow) {
  auto c = topk("0.1");
  try {
    make_error_feedback("ef99", c);
    FAIL() << "no throw";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("ef99"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("ef21w"), std::string::npos);
  }
  EXPECT_EQ(error_feedback_names(), (std::vector<std::string>{"none", "ef14", "ef21", "ef21w"}));
  EXPECT_THROW(make_error_feedback("ef21", nullptr), InvalidArgument);
  ErrorFeedbackOptions o;
  o.world_size = 2;
  o.rank = 2;
  EXPECT_THROW(make_error_feedback("ef21", c, o), InvalidArgument);
  o.rank = 0;
  o.smoothness = {1.0};
  EXPECT_THROW(make_error_feedback("ef21w", c, o), InvalidArgument);
  o.smoothness = {1.0, -2.0};
  EXPECT_THROW(make_error_feedback("ef21w", c, o), InvalidArgument);
  o.smoothness = {1.0, 2.0};
  EXPECT_THROW(make_error_feedback("ef21", c, o), InvalidArgument);

  auto ef = make_error_feedback("ef21", c);
  Vec g = random_vec(30, 1);
  std::vector<uint8_t> buf(ef->max_encoded_bytes(40));
  const size_t len = ef->encode(0, view(g), 0, buf.data(), buf.size());
  Vec other = random_vec(40, 2);
  EXPECT_THROW(ef->encode(0, view(other), 0, buf.data(), buf.size()), InvalidArgument);
  std::vector<int> wrong_dtype(30);
  EXPECT_THROW(ef->encode(0, TensorView::of(wrong_dtype.data(), 30), 0, buf.data(), buf.size()),
               InvalidArgument);
  Vec out(30);
  const PayloadView p{buf.data(), len};
  EXPECT_THROW(ef->decode_and_aggregate(0, {p, p}, view(out)), InvalidArgument);
  ef->decode_and_aggregate(0, {p}, view(out));
  // A truncated payload throws CorruptData and leaves the kept aggregate unchanged.
  const StateDict before = ef->state_dict();
  EXPECT_THROW(ef->decode_and_aggregate(0, {PayloadView{buf.data(), len - 1}}, view(out)),
               CorruptData);
  EXPECT_EQ(ef->state_dict(), before);

  // Checkpoint mismatches: kind, world size, bucket sizes.
  StateDict sd = ef->state_dict();
  auto ef14 = make_error_feedback("ef14", c);
  EXPECT_THROW(ef14->load_state_dict(sd), CorruptData);
  ErrorFeedbackOptions two;
  two.world_size = 2;
  auto ef_two = make_error_feedback("ef21", c, two);
  EXPECT_THROW(ef_two->load_state_dict(sd), CorruptData);
  auto sized = make_error_feedback("ef21", c);
  Vec g40 = random_vec(40, 3);
  sized->encode(0, view(g40), 0, buf.data(), buf.size());
  EXPECT_THROW(sized->load_state_dict(sd), CorruptData);
  StateDict bad = sd;
  bad.tensors["ef.aggregate.0"].bytes.resize(8);
  bad.tensors["ef.aggregate.0"].shape = {2};
  EXPECT_THROW(make_error_feedback("ef21", c)->load_state_dict(bad), CorruptData);
  StateDict bad_key = sd;
  bad_key.tensors["ef.residual.x"] = sd.tensors.at("ef.residual.0");
  EXPECT_THROW(make_error_feedback("ef21", c)->load_state_dict(bad_key), CorruptData);
}

}  // namespace
}  // namespace terse

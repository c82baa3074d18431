// DgcMemory::step with a DgcStepState (the selection's passes fused into the compensation) gives
// the same bits as without one: U, V and the selection, step after step, whatever the
// provisional threshold (too high: the scans fall back to V; too low: the list overflows), with
// adaptation rounds down and up, the resample, whole-tensor samples and 1..3 threads.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "terse/compress/dgc/dgc_memory.h"
#include "terse/core/error.h"

namespace terse {
namespace {

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Two copies of one tensor's U and V: `plain` steps without a state, `fused` with one.
struct Twin {
  int64_t n;
  std::vector<float> u0, v0, u1, v1;
  DgcStepState state;
  explicit Twin(int64_t size)
      : n(size),
        u0(static_cast<size_t>(size), 0.0f),
        v0(static_cast<size_t>(size), 0.0f),
        u1(u0),
        v1(v0) {}

  // One step on both; false (with a gtest failure) when they differ.
  bool step(std::vector<float> g, double density, uint64_t seed_step, const DgcMemoryOptions& mo,
            const DgcSelectOptions& so, DgcStepProfile* profile = nullptr) {
    std::vector<float> g1 = g;
    const SparseSelection a =
        DgcMemory::step(u0.data(), v0.data(), g.data(), n, density, seed_step, mo, so);
    const SparseSelection b = DgcMemory::step(u1.data(), v1.data(), g1.data(), n, density,
                                              seed_step, mo, so, &state, profile);
    EXPECT_EQ(a.indices, b.indices) << "step " << seed_step;
    EXPECT_TRUE(same_bits(a.values, b.values)) << "step " << seed_step;
    EXPECT_EQ(a.threshold, b.threshold) << "step " << seed_step;
    EXPECT_EQ(a.rounds, b.rounds) << "step " << seed_step;
    EXPECT_TRUE(same_bits(u0, u1)) << "U, step " << seed_step;
    EXPECT_TRUE(same_bits(v0, v1)) << "V, step " << seed_step;
    return !::testing::Test::HasFailure();
  }
};

// N(0, 1) with a fraction of Cauchy entries x30 (heavy tails) and per-index scales.
std::vector<float> gradient(int64_t n, std::mt19937& rng, double heavy) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::cauchy_distribution<float> cauchy(0.0f, 1.0f);
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  std::vector<float> g(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float scale = 1.0f + static_cast<float>(i % 7);
    g[static_cast<size_t>(i)] = coin(rng) < heavy ? 30.0f * cauchy(rng) : scale * normal(rng);
  }
  return g;
}

// Over many steps the state's own provisional threshold serves the scans from its list, on any
// thread count, with Nesterov and masking on or off.
TEST(DgcStepState, SameBitsOverManyStepsAndThreadCounts) {
  const int64_t n = 1'600'001;  // 3 parts on 3 threads, 2 on 2 (at least 2^19 each)
  struct Config {
    int threads;
    bool nesterov, masking;
  };
  for (const Config c : {Config{1, false, true}, Config{2, true, false}, Config{3, false, true},
                         Config{3, true, true}}) {
    DgcMemoryOptions mo;
    mo.momentum = 0.9;
    mo.nesterov = c.nesterov;
    mo.momentum_masking = c.masking;
    DgcSelectOptions so;
    so.threads = c.threads;
    so.seed = 5;
    Twin t(n);
    std::mt19937 rng(static_cast<uint32_t>(c.threads * 10 + (c.nesterov ? 1 : 0)));
    int list_scans = 0, with_list = 0;
    for (uint64_t step = 0; step < 8; ++step) {
      DgcStepProfile p;
      ASSERT_TRUE(t.step(gradient(n, rng, 1e-4), 0.001, step, mo, so, &p)) << c.threads;
      list_scans += p.select.list_scans;
      with_list += t.state.prescan.list.idx.empty() ? 0 : 1;
    }
    // Every step after the first has a list, and it serves at least the first pass.
    EXPECT_GE(list_scans, 5) << "the list served few scans: " << c.threads << " threads";
    EXPECT_GE(with_list, 5);
  }
}

// Any provisional threshold gives the same bits: far too high (every scan reads V), far too low
// (the list overflows its cap and is dropped), and random ones around the true threshold.
TEST(DgcStepState, AnyProvisionalThresholdGivesTheSameBits) {
  const int64_t n = 300'007;
  DgcMemoryOptions mo;
  mo.momentum = 0.9;
  DgcSelectOptions so;
  Twin t(n);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> log_factor(-3.0f, 3.0f);
  bool fell_back = false, overflowed = false, listed = false;
  for (uint64_t step = 0; step < 40; ++step) {
    const float last = t.state.hint > 0.0f ? t.state.hint : 1.0f;
    switch (step % 4) {
      case 0:
        t.state.hint = 1e30f;  // above every |V|: an empty list, every scan falls back
        break;
      case 1:
        t.state.hint = std::numeric_limits<float>::denorm_min();  // everything: over the cap
        break;
      case 2:
        t.state.hint = last * std::exp(log_factor(rng));
        break;
      default:
        break;  // the state's own
    }
    DgcStepProfile p;
    ASSERT_TRUE(t.step(gradient(n, rng, 1e-3), 0.01, step, mo, so, &p));
    fell_back = fell_back || (step % 4 == 0 && p.select.full_scans > 0);
    overflowed = overflowed || (step % 4 == 1 && t.state.list_overflowed);
    listed = listed || (step % 4 == 3 && p.select.list_scans > 0);
  }
  EXPECT_TRUE(fell_back);
  EXPECT_TRUE(overflowed);
  EXPECT_TRUE(listed);
}

// Data built so that the sample misleads the first threshold: rounds down (the sample holds
// the few large values) and, without the resample, rounds up (the sample holds only small
// ones); with the resample, the exact top-k of the candidates. The first step of a Twin has
// U = V = 0, so V = g. Each case runs with the list's threshold at, just above and just below
// every threshold the rounds visit (a pass exactly at it may use the list, one a float below
// it must read V), and far off.
TEST(DgcStepState, AdaptationRoundsAndResampleGiveTheSameBits) {
  const int64_t n = 200'000;
  const double density = 0.001;
  DgcSelectOptions so;
  so.seed = 11;
  const DgcSamplePlan plan = dgc_sample_plan(n, density, so.sample_ratio);
  const int64_t start = dgc_sample_start(plan, 0, so);
  auto sampled = [&](int64_t i) { return i >= start && (i - start) % plan.stride == 0; };
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> unif(0.0f, 1.0f);

  // Rounds down: top_k_samples sampled values at 1, the rest of the sample at 0, 330 others
  // spread over [0, 1) and the rest below 0.01: the count at 1 is far below 0.8k, so the
  // threshold falls by 0.8 a few times.
  std::vector<float> down(static_cast<size_t>(n));
  int64_t ones = 0;
  for (int64_t i = 0; i < n; ++i) {
    float x = i % 600 == 1 ? unif(rng) : 0.01f * unif(rng);
    if (sampled(i)) x = ones++ < plan.top_k_samples ? 1.0f : 0.0f;
    down[static_cast<size_t>(i)] = i % 2 == 0 ? x : -x;
  }
  // Rounds up: the sample at 0.1, one in 100 of the others in [0, 0.4): the count at 0.1 is
  // far above 1.3k.
  std::vector<float> up(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float x = i % 100 == 7 ? 0.4f * unif(rng) : 0.001f;
    up[static_cast<size_t>(i)] = sampled(i) ? 0.1f : x;
  }
  // Three elements exactly at each threshold a round can visit, so that a pass that missed the
  // elements at its threshold would select differently.
  auto add_ties = [&](std::vector<float>& x, float first, double factor) {
    int64_t at = 3;
    float thr = first;
    for (int r = 0; r <= so.max_adaptation_iters; ++r) {
      for (int c = 0; c < 3; ++c, at += 997) {
        if (!sampled(at)) x[static_cast<size_t>(at)] = c == 1 ? -thr : thr;
      }
      thr = static_cast<float>(static_cast<double>(thr) * factor);
    }
  };
  add_ties(down, 1.0f, 0.8);
  add_ties(up, 0.1f, 1.3);

  DgcMemoryOptions mo;
  mo.momentum = 0.5;
  struct Case {
    const std::vector<float>* g;
    bool resample;
    float first;    // the sample's threshold
    double factor;  // of each round
    int min_rounds;
  };
  for (const Case c : {Case{&down, true, 1.0f, 0.8, 2}, Case{&up, false, 0.1f, 1.3, 3},
                       Case{&up, true, 0.1f, 1.3, 0}}) {
    so.resample = c.resample;
    const SparseSelection s = dgc_select(c.g->data(), n, density, 0, so);
    EXPECT_GE(s.rounds, c.min_rounds) << "resample " << c.resample;
    std::vector<float> hints = {1e-6f, 1e6f};
    float thr = c.first;
    for (int r = 0; r <= s.rounds; ++r) {
      for (const float h : {thr, std::nextafter(thr, 0.0f), std::nextafter(thr, 2.0f * thr),
                            0.97f * thr, 1.03f * thr}) {
        hints.push_back(h);
      }
      thr = static_cast<float>(static_cast<double>(thr) * c.factor);
    }
    for (const float hint : hints) {
      Twin t(n);
      t.state.hint = hint;
      DgcStepProfile p;
      ASSERT_TRUE(t.step(*c.g, density, 0, mo, so, &p)) << hint;
      EXPECT_EQ(p.select.full_scans + p.select.list_scans, s.rounds + 1);
    }
  }
}

// A sample element on the first index of a thread's part, and on the last of the part before:
// gathered once, by the part that holds it (the selection checks the sample's length).
TEST(DgcStepState, SampleAcrossThePartBoundary) {
  const int64_t n = int64_t{1} << 20;  // 2 parts of 2^19 on 2 threads
  const int64_t boundary = n / 2;
  DgcMemoryOptions mo;
  DgcSelectOptions so;
  so.threads = 2;
  const DgcSamplePlan plan = dgc_sample_plan(n, 0.001, so.sample_ratio);
  std::mt19937 rng(29);
  for (const int64_t offset : {0, 1, -1}) {
    uint64_t step = 0;
    while ((boundary + offset - dgc_sample_start(plan, step, so)) % plan.stride != 0) ++step;
    Twin t(n);
    t.state.hint = 1.0f;
    ASSERT_TRUE(t.step(gradient(n, rng, 1e-4), 0.001, step, mo, so)) << offset;
  }
}

// A list that goes over its cap in one thread's part only is dropped as a whole.
TEST(DgcStepState, OverflowInOnePartDropsTheList) {
  const int64_t n = int64_t{1} << 20;  // 2 parts of 2^19 on 2 threads
  DgcMemoryOptions mo;
  DgcSelectOptions so;
  so.threads = 2;
  std::mt19937 rng(31);
  std::vector<float> g = gradient(n, rng, 0.0);
  for (int64_t i = n / 2; i < n; i += 2) g[static_cast<size_t>(i)] = 50.0f;  // 1/4 of n
  Twin t(n);
  t.state.hint = 10.0f;
  ASSERT_TRUE(t.step(g, 0.001, 0, mo, so));
  EXPECT_TRUE(t.state.list_overflowed);
}

// A NaN in the sample of the second thread's part is reported as without a state, and so is the
// first of two in different parts.
TEST(DgcStepState, NanInAnyPartIsReportedAsWithoutAState) {
  const int64_t n = int64_t{1} << 20;
  DgcMemoryOptions mo;
  DgcSelectOptions so;
  so.threads = 2;
  const DgcSamplePlan plan = dgc_sample_plan(n, 0.001, so.sample_ratio);
  const int64_t start = dgc_sample_start(plan, 0, so);
  const int64_t late = start + (n - start - 1) / plan.stride * plan.stride;  // the last sampled
  for (const bool both : {false, true}) {
    std::vector<float> g(static_cast<size_t>(n), 0.5f);
    g[static_cast<size_t>(late)] = std::nanf("");
    if (both) g[static_cast<size_t>(start + 7 * plan.stride)] = -std::nanf("");
    std::string what[2];
    for (int fused = 0; fused < 2; ++fused) {
      std::vector<float> u(static_cast<size_t>(n), 0.0f), v = u;
      DgcStepState state;
      try {
        DgcMemory::step(u.data(), v.data(), g.data(), n, 0.001, 0, mo, so,
                        fused != 0 ? &state : nullptr);
      } catch (const NumericalError& e) {
        what[fused] = e.what();
      }
    }
    const int64_t first = both ? start + 7 * plan.stride : late;
    EXPECT_NE(what[0].find("index " + std::to_string(first) + " "), std::string::npos) << what[0];
    EXPECT_EQ(what[0], what[1]);
  }
}

// Tensors sampled whole (n <= ceil(2 / density)) and lengths around the 32-element blocks and
// the 2048-element chunks of the fused pass.
TEST(DgcStepState, SmallAndRaggedTensorsGiveTheSameBits) {
  DgcMemoryOptions mo;
  mo.momentum = 0.9;
  DgcSelectOptions so;
  std::mt19937 rng(23);
  for (const int64_t n : {1, 2, 31, 32, 33, 99, 1023, 2047, 2048, 2049, 4097, 70'001}) {
    for (const double density : {0.01, 0.25, 1.0}) {
      Twin t(n);
      for (uint64_t step = 0; step < 6; ++step) {
        ASSERT_TRUE(t.step(gradient(n, rng, 0.01), density, step, mo, so))
            << "n " << n << ", density " << density;
      }
    }
  }
}

// A NaN where the selection samples V throws NumericalError from both paths, naming the same
// index; bad arguments are refused before U or V change.
TEST(DgcStepState, NanAndBadArgumentsAsWithoutAState) {
  const int64_t n = 10'000;
  DgcMemoryOptions mo;
  DgcSelectOptions so;
  const DgcSamplePlan plan = dgc_sample_plan(n, 0.01, so.sample_ratio);
  const int64_t at = dgc_sample_start(plan, 4, so) + 3 * plan.stride;
  std::vector<float> g(static_cast<size_t>(n), 1.0f);
  g[static_cast<size_t>(at)] = std::nanf("");
  std::string plain, fused;
  std::vector<float> u(static_cast<size_t>(n), 0.0f), v = u;
  try {
    DgcMemory::step(u.data(), v.data(), g.data(), n, 0.01, 4, mo, so);
  } catch (const NumericalError& e) {
    plain = e.what();
  }
  DgcStepState state;
  state.hint = 0.5f;
  u.assign(static_cast<size_t>(n), 0.0f);
  v = u;
  try {
    DgcMemory::step(u.data(), v.data(), g.data(), n, 0.01, 4, mo, so, &state);
  } catch (const NumericalError& e) {
    fused = e.what();
  }
  EXPECT_NE(plain.find("index " + std::to_string(at)), std::string::npos) << plain;
  EXPECT_EQ(plain, fused);

  std::vector<float> u2(4, 1.0f), v2(4, 2.0f), g2(4, 3.0f);
  DgcStepState bad;
  bad.list_k = 0.5;
  EXPECT_THROW(DgcMemory::step(u2.data(), v2.data(), g2.data(), 4, 0.5, 0, mo, so, &bad),
               InvalidArgument);
  EXPECT_THROW(DgcMemory::step(u2.data(), v2.data(), g2.data(), 4, 0.0, 0, mo, so, &state),
               InvalidArgument);
  EXPECT_EQ(u2, std::vector<float>(4, 1.0f));
  EXPECT_EQ(v2, std::vector<float>(4, 2.0f));
}

}  // namespace
}  // namespace terse

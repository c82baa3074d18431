#include "terse/compress/dgc/sparse_selection.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

#include "terse/core/error.h"

namespace terse {
namespace {

std::vector<float> normal_data(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& e : x) e = d(rng);
  return x;
}

// Heavy tails: Cauchy (a ratio of normals), the shape of gradients with rare large entries.
std::vector<float> cauchy_data(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::cauchy_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& e : x) e = d(rng);
  return x;
}

void expect_sorted_consistent(const float* x, const SparseSelection& s) {
  ASSERT_EQ(s.indices.size(), s.values.size());
  for (size_t j = 0; j < s.indices.size(); ++j) {
    if (j > 0) {
      EXPECT_LT(s.indices[j - 1], s.indices[j]);
    }
    EXPECT_EQ(s.values[j], x[s.indices[j]]);
  }
}

TEST(DgcSamplePlan, MatchesReferenceArithmetic) {
  // n = 25.6M, rho = 0.001: pct = 256000, cpr = 2000 -> stride = ceil(100/32)*32 + 1 = 129,
  // num_samples = 198449 < 256000 -> stride 121, 113, 105, 97 (263917 >= 256000).
  const DgcSamplePlan p = dgc_sample_plan(25'600'000, 0.001);
  EXPECT_EQ(p.stride, 97);
  EXPECT_EQ(p.num_samples, 25'600'000 / 97);
  EXPECT_EQ(p.top_k_samples, static_cast<int64_t>(std::ceil(p.num_samples * 0.001)));
  EXPECT_EQ(p.num_selects, static_cast<int64_t>(std::ceil(25'600'000 * 0.001)));
  // Small tensors (n <= ceil(2/rho)) are sampled whole.
  const DgcSamplePlan s = dgc_sample_plan(1500, 0.001);
  EXPECT_EQ(s.stride, 1);
  EXPECT_EQ(s.num_samples, 1500);
  EXPECT_EQ(s.num_selects, 2);
}

TEST(DgcSamplePlan, RejectsBadInput) {
  EXPECT_THROW(dgc_sample_plan(100, 0.0), InvalidArgument);
  EXPECT_THROW(dgc_sample_plan(100, 1.5), InvalidArgument);
  EXPECT_THROW(dgc_sample_plan(0, 0.1), InvalidArgument);
  EXPECT_THROW(dgc_sample_plan(100, 0.1, 0.0), InvalidArgument);
}

using SelCase = std::tuple<int64_t, double, bool>;
class DgcSelectCount : public ::testing::TestWithParam<SelCase> {};

TEST_P(DgcSelectCount, WithinBoundsAndAboveThreshold) {
  const auto [n, density, heavy] = GetParam();
  const auto x = heavy ? cauchy_data(n, 7) : normal_data(n, 7);
  const int64_t k = dgc_num_selects(n, density);
  for (uint64_t step = 0; step < 3; ++step) {
    const SparseSelection s = dgc_select(x.data(), n, density, step);
    expect_sorted_consistent(x.data(), s);
    const auto count = static_cast<int64_t>(s.indices.size());
    EXPECT_LE(count, k) << "n " << n << " density " << density;
    EXPECT_GE(static_cast<double>(count), std::floor(0.8 * static_cast<double>(k)))
        << "n " << n << " density " << density << " rounds " << s.rounds;
    for (const float v : s.values) EXPECT_GE(std::fabs(v), static_cast<float>(s.threshold));
    EXPECT_LE(s.rounds, 10);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, DgcSelectCount,
    ::testing::Combine(::testing::Values<int64_t>(1, 17, 4097, 100'003, 1'000'000),
                       ::testing::Values(0.1, 0.01, 0.001), ::testing::Bool()));

TEST(DgcSelect, DeterministicAndSeedDependent) {
  const auto x = normal_data(1'000'000, 3);
  const auto a = dgc_select(x.data(), 1'000'000, 0.001, 5);
  const auto b = dgc_select(x.data(), 1'000'000, 0.001, 5);
  EXPECT_EQ(a.indices, b.indices);
  EXPECT_EQ(a.threshold, b.threshold);
  // Another step draws another sample start, so (almost surely) another threshold estimate.
  bool differs = false;
  for (uint64_t step = 6; step < 12 && !differs; ++step) {
    differs = dgc_select(x.data(), 1'000'000, 0.001, step).threshold != a.threshold;
  }
  EXPECT_TRUE(differs);
}

TEST(DgcSelect, ThreadCountDoesNotChangeResult) {
  for (const bool heavy : {false, true}) {
    const int64_t n = 3'000'001;
    const auto x = heavy ? cauchy_data(n, 21) : normal_data(n, 21);
    DgcSelectOptions one, many;
    many.threads = 3;
    const auto a = dgc_select(x.data(), n, 0.001, 2, one);
    const auto b = dgc_select(x.data(), n, 0.001, 2, many);
    EXPECT_EQ(a.indices, b.indices);
    EXPECT_EQ(a.values, b.values);
    EXPECT_EQ(a.rounds, b.rounds);
  }
  DgcSelectOptions bad;
  bad.threads = 0;
  const std::vector<float> x(8, 1.0f);
  EXPECT_THROW(dgc_select(x.data(), 8, 0.5, 0, bad), InvalidArgument);
}

// Given the final threshold t, the result is fixed by the reference's rules: S = {i : |x_i| >= t}
// in index order; more than upper_bound * k of them (with resample) -> the exact top-k of S
// (ties: lower index); otherwise the first k of S. This pins every bit of the selection,
// including after adaptation rounds (which the loop below makes sure happen), however the
// passes are organised.
TEST(DgcSelect, ResultIsTheReferenceRuleAtItsFinalThreshold) {
  const int64_t n = 1'000'003;  // not a multiple of the 32-element blocks
  const double density = 0.001;
  const int64_t k = dgc_num_selects(n, density);
  int adapted = 0, resampled = 0;
  for (const bool heavy : {false, true}) {
    const auto x = heavy ? cauchy_data(n, 5) : normal_data(n, 5);
    for (const bool resample : {true, false}) {
      for (const int threads : {1, 2}) {
        for (uint64_t step = 0; step < 24; ++step) {
          DgcSelectOptions o;
          o.resample = resample;
          o.threads = threads;
          const SparseSelection s = dgc_select(x.data(), n, density, step, o);
          const auto t = static_cast<float>(s.threshold);
          std::vector<int64_t> all;
          for (int64_t i = 0; i < n; ++i) {
            if (std::fabs(x[static_cast<size_t>(i)]) >= t) all.push_back(i);
          }
          std::vector<int64_t> want;
          const bool exact = resample && static_cast<double>(all.size()) > o.upper_bound * k;
          if (exact) {
            std::vector<int64_t> order = all;
            std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
              const float fa = std::fabs(x[static_cast<size_t>(a)]);
              const float fb = std::fabs(x[static_cast<size_t>(b)]);
              return fa > fb || (fa == fb && a < b);
            });
            want.assign(order.begin(), order.begin() + k);
            std::sort(want.begin(), want.end());
          } else {
            want.assign(all.begin(), all.begin() + std::min<int64_t>(k, all.size()));
          }
          ASSERT_EQ(s.indices, want) << "heavy " << heavy << ", resample " << resample
                                     << ", threads " << threads << ", step " << step;
          expect_sorted_consistent(x.data(), s);
          adapted += s.rounds > 0 ? 1 : 0;
          resampled += exact ? 1 : 0;
        }
      }
    }
  }
  EXPECT_GT(adapted, 0) << "no case adapted its threshold; the test does not cover the rounds";
  EXPECT_GT(resampled, 0) << "no case took the exact top-k path";
}

TEST(DgcSelect, WholeSampleIsExactForSmallTensors) {
  // n <= ceil(2/rho): the whole tensor is the sample, the threshold is the exact k-th |x|.
  const std::vector<float> x = {0.5f, -3.0f, 1.0f, 2.0f, -0.25f, 4.0f, 0.0f, -1.5f};
  const SparseSelection s = dgc_select(x.data(), 8, 0.25, 0);  // k = 2
  EXPECT_EQ(s.indices, (std::vector<int64_t>{1, 5}));
  EXPECT_EQ(s.values, (std::vector<float>{-3.0f, 4.0f}));
  EXPECT_FLOAT_EQ(s.threshold, 3.0);
}

TEST(DgcSelect, HighMassAboveThresholdResamplesToExactK) {
  // 10% of the elements are equal and large, so the first threshold catches ~100x too many;
  // resample keeps exactly k of them.
  const int64_t n = 200'000;
  std::vector<float> x = normal_data(n, 11);
  for (int64_t i = 0; i < n; i += 10) x[static_cast<size_t>(i)] = 100.0f;
  const SparseSelection s = dgc_select(x.data(), n, 0.001, 0);
  EXPECT_EQ(static_cast<int64_t>(s.indices.size()), dgc_num_selects(n, 0.001));
  for (const float v : s.values) EXPECT_EQ(v, 100.0f);
}

TEST(DgcSelect, NaNInSampleThrows) {
  std::vector<float> x(64, 1.0f);
  x[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(dgc_select(x.data(), 64, 0.1, 0), NumericalError);
}

TEST(ExactTopk, SelectsLargestWithLowIndexTies) {
  const std::vector<float> x = {1.0f, -5.0f, 2.0f, 2.0f, -2.0f, 0.5f};
  const SparseSelection s = exact_topk_select(x.data(), 6, 3);
  EXPECT_EQ(s.indices, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(s.values, (std::vector<float>{-5.0f, 2.0f, 2.0f}));
  EXPECT_THROW(exact_topk_select(x.data(), 6, 7), InvalidArgument);
  EXPECT_TRUE(exact_topk_select(x.data(), 6, 0).indices.empty());
}

TEST(ExactTopk, EveryUnselectedAtMostEverySelected) {
  for (const int64_t n : {1, 4097, 100'000}) {
    const auto x = cauchy_data(n, 5);
    const int64_t k = dgc_num_selects(n, 0.01);
    const SparseSelection s = exact_topk_select(x.data(), n, k);
    ASSERT_EQ(static_cast<int64_t>(s.indices.size()), k);
    expect_sorted_consistent(x.data(), s);
    float min_sel = std::numeric_limits<float>::infinity();
    for (const float v : s.values) min_sel = std::min(min_sel, std::fabs(v));
    std::vector<bool> chosen(static_cast<size_t>(n), false);
    for (const int64_t i : s.indices) chosen[static_cast<size_t>(i)] = true;
    float max_unsel = 0.0f;
    for (int64_t i = 0; i < n; ++i) {
      if (!chosen[static_cast<size_t>(i)]) max_unsel = std::max(max_unsel, std::fabs(x[i]));
    }
    EXPECT_LE(max_unsel, min_sel) << "n " << n;
  }
}

TEST(DgcSelect, SampledSelectionOverlapsExactTopk) {
  // The sampled threshold picks (almost) the same elements as the exact top-k: every element
  // it selects is among the exact top 1.3k.
  const int64_t n = 1'000'000;
  const auto x = normal_data(n, 9);
  const int64_t k = dgc_num_selects(n, 0.001);
  const auto sampled = dgc_select(x.data(), n, 0.001, 1);
  const auto wide = exact_topk_select(x.data(), n, static_cast<int64_t>(1.3 * k));
  std::vector<int64_t> common;
  std::set_intersection(sampled.indices.begin(), sampled.indices.end(), wide.indices.begin(),
                        wide.indices.end(), std::back_inserter(common));
  EXPECT_EQ(common.size(), sampled.indices.size());
}

}  // namespace
}  // namespace terse

// Rand-k's coordinates (RandK::indices, the Feistel permutation of
// terse/kernels/rand_k_permutation.h): distinct, sorted, in range, and statistically the uniform
// k-subsets the compressor's contract promises, checked by chi-square statistics over many seeds
// whose power against biased samplers is checked here too.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "terse/compress/rand_k.h"
#include "terse/core/philox.h"
#include "terse/kernels/rand_k_permutation.h"

namespace terse {
namespace {

using Sampler = std::function<std::vector<int64_t>(uint64_t seed)>;

Sampler randk(int64_t n, double density) {
  return [n, density](uint64_t seed) {
    return RandK(density, ValueCoding::kF32, true, false).indices(n, seed);
  };
}

// Chi-square of the inclusion counts of each index over `trials` seeds, against T k/n each with
// the Bernoulli variance T p (1 - p); also the largest |count - mean| in standard deviations.
struct Inclusion {
  double chi2 = 0.0;
  double worst_sigmas = 0.0;
};
Inclusion inclusion(const Sampler& s, int64_t n, int64_t k, int trials) {
  std::vector<double> count(static_cast<size_t>(n), 0.0);
  for (int t = 0; t < trials; ++t) {
    for (const int64_t i : s(1000003u * static_cast<uint64_t>(t) + 7))
      count[static_cast<size_t>(i)] += 1;
  }
  const double p = static_cast<double>(k) / static_cast<double>(n);
  const double mean = trials * p, var = trials * p * (1 - p);
  Inclusion r;
  for (const double c : count) {
    r.chi2 += (c - mean) * (c - mean) / var;
    r.worst_sigmas = std::max(r.worst_sigmas, std::fabs(c - mean) / std::sqrt(var));
  }
  return r;
}

// Chi-square of the counts of each pair {i, j} kept together, against T k(k-1)/(n(n-1)).
double pair_chi2(const Sampler& s, int64_t n, int64_t k, int trials) {
  std::vector<double> count(static_cast<size_t>(n * n), 0.0);
  for (int t = 0; t < trials; ++t) {
    const std::vector<int64_t> idx = s(7777u * static_cast<uint64_t>(t) + 3);
    for (size_t a = 0; a < idx.size(); ++a)
      for (size_t b = a + 1; b < idx.size(); ++b)
        count[static_cast<size_t>(idx[a] * n + idx[b])] += 1;
  }
  const double q = static_cast<double>(k * (k - 1)) / static_cast<double>(n * (n - 1));
  const double mean = trials * q, var = trials * q * (1 - q);
  double chi2 = 0.0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) {
      const double c = count[static_cast<size_t>(i * n + j)];
      chi2 += (c - mean) * (c - mean) / var;
    }
  return chi2;
}

// A chi-square bound with dof degrees of freedom: mean + 6 standard deviations (a false alarm
// below 1e-6 per check; the seeds are fixed, so the tests are deterministic).
double bound(double dof) { return dof + 6.0 * std::sqrt(2.0 * dof); }

TEST(RandKSampling, IndicesAreDistinctSortedInRangeAndSeeded) {
  for (const int64_t n : {1, 2, 7, 100, 255, 256, 257, 4097, 65537, 1 << 20}) {
    for (const double density : {0.001, 0.01, 0.3, 0.99, 1.0}) {
      const RandK c(density, ValueCoding::kF32, true, false);
      const int64_t k = c.k_for(n);
      for (const uint64_t seed : {0ull, 1ull, 0xfedcba9876543210ull}) {
        const std::vector<int64_t> idx = c.indices(n, seed);
        ASSERT_EQ(static_cast<int64_t>(idx.size()), k) << n << " " << density;
        for (size_t j = 0; j < idx.size(); ++j) {
          ASSERT_GE(idx[j], 0);
          ASSERT_LT(idx[j], n);
          if (j > 0) {
            ASSERT_LT(idx[j - 1], idx[j]) << "n=" << n << " density=" << density;
          }
        }
      }
      // The definition: pi(0), ..., pi(k - 1), sorted (RandK takes a bitmap for large k).
      const RandKPermutation pi(static_cast<uint64_t>(n), 99);
      std::vector<int64_t> want;
      for (int64_t j = 0; j < k; ++j)
        want.push_back(static_cast<int64_t>(pi(static_cast<uint64_t>(j))));
      std::sort(want.begin(), want.end());
      EXPECT_EQ(c.indices(n, 99), want) << "n=" << n << " density=" << density;
      if (k < n && k > 1) {
        EXPECT_NE(c.indices(n, 1), c.indices(n, 2)) << n << " " << density;
      }
    }
  }
}

TEST(RandKSampling, PermutationIsABijectionOfTheRange) {
  for (const uint64_t n : {1u, 5u, 256u, 300u, 1000u, 70000u}) {
    const RandKPermutation pi(n, 42 + n);
    std::vector<uint8_t> seen(n, 0);
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t y = pi(i);
      ASSERT_LT(y, n);
      ASSERT_EQ(seen[y], 0) << "n=" << n << ": " << y << " twice";
      seen[y] = 1;
    }
  }
}

TEST(RandKSampling, EachIndexIsKeptWithProbabilityKOverN) {
  // n = 5: the network's smallest domain (256) walked far; 100 and 300: walked; 256: not.
  struct Case {
    int64_t n;
    double density;
    int trials;
  };
  for (const Case c : {Case{5, 0.4, 20000}, Case{100, 0.1, 20000}, Case{256, 0.05, 20000},
                       Case{300, 0.5, 8000}, Case{1000, 0.01, 50000}}) {
    const int64_t k = RandK(c.density, ValueCoding::kF32, true, false).k_for(c.n);
    const Inclusion r = inclusion(randk(c.n, c.density), c.n, k, c.trials);
    // The counts sum to T k, so n - 1 degrees of freedom.
    EXPECT_LT(r.chi2, bound(static_cast<double>(c.n - 1))) << "n=" << c.n << " k=" << k;
    EXPECT_LT(r.worst_sigmas, 5.5) << "n=" << c.n << " k=" << k;
  }
}

TEST(RandKSampling, PairsAndSubsetsAreUniform) {
  // Every pair of 30 kept together with probability k(k-1)/(n(n-1)).
  EXPECT_LT(pair_chi2(randk(30, 0.2), 30, 6, 40000), bound(434.0));
  // Every 3-subset of 6 equally likely (20 of them).
  std::map<std::vector<int64_t>, double> count;
  const int trials = 40000;
  const Sampler s = randk(6, 0.5);
  for (int t = 0; t < trials; ++t) count[s(static_cast<uint64_t>(t) * 31 + 1)] += 1;
  EXPECT_EQ(count.size(), 20u);
  const double mean = trials / 20.0;
  double chi2 = 0.0;
  for (const auto& kv : count) chi2 += (kv.second - mean) * (kv.second - mean) / mean;
  EXPECT_LT(chi2, bound(19.0));
}

TEST(RandKSampling, TheStatisticsFlagBiasedSamplers) {
  // A sampler that keeps index 0 a little too often (on one seed in 8 it swaps 0 in).
  const Sampler favours_zero = [](uint64_t seed) {
    std::vector<int64_t> idx = randk(100, 0.1)(seed);
    if (seed % 8 == 0 && idx.front() != 0) idx.front() = 0;
    return idx;
  };
  EXPECT_GT(inclusion(favours_zero, 100, 10, 20000).worst_sigmas, 5.5);
  // A window of k neighbours from a uniform start (cyclically): every index is kept with
  // probability k/n exactly, but the pairs are far from uniform.
  const Sampler window = [](uint64_t seed) {
    PhiloxStream rng(seed, 9);
    const auto start = static_cast<int64_t>(rng.below(30));
    std::vector<int64_t> idx;
    for (int64_t j = 0; j < 6; ++j) idx.push_back((start + j) % 30);
    std::sort(idx.begin(), idx.end());
    return idx;
  };
  EXPECT_LT(inclusion(window, 30, 6, 40000).chi2, bound(29.0));
  EXPECT_GT(pair_chi2(window, 30, 6, 40000), bound(434.0));
}

}  // namespace
}  // namespace terse

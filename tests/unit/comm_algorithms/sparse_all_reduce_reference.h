#pragma once

// The single-process reference of SparseAllReduce (Ok-Topk): every rank's pairs summed in rank
// order into zeros, each range keeps its quota of the largest |sum| (ties: lower index).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "sparse_test_util.h"
#include "terse/comm/algorithms/sparse_all_reduce.h"

namespace terse::testing {

// One run with boundaries b.
struct OkTopkReference {
  std::vector<float> out;
  std::vector<int32_t> selected;  // sorted
};

inline OkTopkReference ok_topk_reference(const std::vector<Pairs>& all, int64_t numel,
                                         int64_t budget, const std::vector<int64_t>& b,
                                         bool average) {
  const int n = static_cast<int>(all.size());
  std::vector<float> sums(static_cast<size_t>(numel), 0.0f);
  std::vector<uint8_t> touched(static_cast<size_t>(numel), 0);
  for (const Pairs& p : all) {
    for (size_t i = 0; i < p.indices.size(); ++i) {
      sums[static_cast<size_t>(p.indices[i])] += p.values[i];
      touched[static_cast<size_t>(p.indices[i])] = 1;
    }
  }
  std::vector<std::vector<int32_t>> cands(static_cast<size_t>(n));
  std::vector<int64_t> counts;
  for (int r = 0; r < n; ++r) {
    for (int64_t i = b[static_cast<size_t>(r)]; i < b[static_cast<size_t>(r) + 1]; ++i) {
      if (touched[static_cast<size_t>(i)]) {
        cands[static_cast<size_t>(r)].push_back(static_cast<int32_t>(i));
      }
    }
    counts.push_back(static_cast<int64_t>(cands[static_cast<size_t>(r)].size()));
  }
  const std::vector<int64_t> q = SparseAllReduce::quotas(budget, counts);
  OkTopkReference ref;
  ref.out.assign(static_cast<size_t>(numel), 0.0f);
  for (int r = 0; r < n; ++r) {
    std::vector<int32_t> c = cands[static_cast<size_t>(r)];
    std::sort(c.begin(), c.end(), [&](int32_t x, int32_t y) {
      const float ax = std::fabs(sums[static_cast<size_t>(x)]);
      const float ay = std::fabs(sums[static_cast<size_t>(y)]);
      return ax > ay || (ax == ay && x < y);
    });
    c.resize(static_cast<size_t>(q[static_cast<size_t>(r)]));
    std::sort(c.begin(), c.end());
    for (const int32_t i : c) {
      const float s = sums[static_cast<size_t>(i)];
      ref.out[static_cast<size_t>(i)] = average && n > 1 ? s / static_cast<float>(n) : s;
      ref.selected.push_back(i);
    }
  }
  return ref;
}

inline int64_t union_size(const std::vector<Pairs>& all, int64_t numel) {
  std::vector<uint8_t> seen(static_cast<size_t>(numel), 0);
  for (const Pairs& p : all)
    for (const int32_t i : p.indices) seen[static_cast<size_t>(i)] = 1;
  return std::count(seen.begin(), seen.end(), uint8_t{1});
}

}  // namespace terse::testing

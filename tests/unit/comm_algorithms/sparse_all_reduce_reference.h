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

// The single-process reference of SparseAllReduce with Quota::kFixed. c_r = floor(k / N), plus
// one for r < k mod N; rank p sends range r its c_r pairs of largest |value| (ties: lower index);
// the sent pairs are summed in rank order into zeros; range r keeps its c_r of largest |sum|
// (ties: lower index).
struct FixedReference {
  std::vector<float> out;
  std::vector<int32_t> selected;           // sorted
  std::vector<std::vector<uint8_t>> sent;  // per rank, per pair: went out in phase 1
  std::vector<std::vector<uint8_t>> kept;  // sent and selected
};

inline FixedReference fixed_reference(const std::vector<Pairs>& all, int64_t numel, int64_t budget,
                                      const std::vector<int64_t>& b, bool average) {
  const int n = static_cast<int>(all.size());
  auto share = [&](int r) { return budget / n + (r < budget % n ? 1 : 0); };
  auto larger_of = [](const std::vector<float>& mag) {
    return [&mag](size_t x, size_t y) { return mag[x] > mag[y] || (mag[x] == mag[y] && x < y); };
  };
  FixedReference ref;
  for (const Pairs& p : all) {
    std::vector<uint8_t> sent(p.indices.size(), 0);
    std::vector<float> mag(p.values.size());
    for (size_t i = 0; i < mag.size(); ++i) mag[i] = std::fabs(p.values[i]);
    for (int r = 0; r < n; ++r) {
      std::vector<size_t> in_range;  // positions, so "lower position" is "lower index"
      for (size_t i = 0; i < p.indices.size(); ++i) {
        if (p.indices[i] >= b[static_cast<size_t>(r)] &&
            p.indices[i] < b[static_cast<size_t>(r) + 1]) {
          in_range.push_back(i);
        }
      }
      std::sort(in_range.begin(), in_range.end(), larger_of(mag));
      const size_t take = std::min(in_range.size(), static_cast<size_t>(share(r)));
      for (size_t j = 0; j < take; ++j) sent[in_range[j]] = 1;
    }
    ref.sent.push_back(sent);
  }
  std::vector<float> sums(static_cast<size_t>(numel), 0.0f);
  std::vector<uint8_t> touched(static_cast<size_t>(numel), 0);
  for (int p = 0; p < n; ++p) {
    const Pairs& pp = all[static_cast<size_t>(p)];
    for (size_t i = 0; i < pp.indices.size(); ++i) {
      if (!ref.sent[static_cast<size_t>(p)][i]) continue;
      sums[static_cast<size_t>(pp.indices[i])] += pp.values[i];
      touched[static_cast<size_t>(pp.indices[i])] = 1;
    }
  }
  std::vector<float> mag(static_cast<size_t>(numel));
  for (size_t i = 0; i < mag.size(); ++i) mag[i] = std::fabs(sums[i]);
  ref.out.assign(static_cast<size_t>(numel), 0.0f);
  for (int r = 0; r < n; ++r) {
    std::vector<size_t> cand;
    for (int64_t i = b[static_cast<size_t>(r)]; i < b[static_cast<size_t>(r) + 1]; ++i) {
      if (touched[static_cast<size_t>(i)]) cand.push_back(static_cast<size_t>(i));
    }
    std::sort(cand.begin(), cand.end(), larger_of(mag));
    cand.resize(std::min(cand.size(), static_cast<size_t>(share(r))));
    std::sort(cand.begin(), cand.end());
    for (const size_t i : cand) {
      ref.out[i] = average && n > 1 ? sums[i] / static_cast<float>(n) : sums[i];
      ref.selected.push_back(static_cast<int32_t>(i));
    }
  }
  for (int p = 0; p < n; ++p) {
    const Pairs& pp = all[static_cast<size_t>(p)];
    std::vector<uint8_t> kept(pp.indices.size(), 0);
    for (size_t i = 0; i < kept.size(); ++i) {
      kept[i] = ref.sent[static_cast<size_t>(p)][i] &&
                        std::binary_search(ref.selected.begin(), ref.selected.end(), pp.indices[i])
                    ? 1
                    : 0;
    }
    ref.kept.push_back(kept);
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

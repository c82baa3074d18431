#pragma once

// Deterministic per-rank sparse inputs and a single-process reference that sums in rank order.

#include <cmath>
#include <cstdint>
#include <vector>

#include "terse/comm/algorithms/sparse_all_gather.h"
#include "terse/core/philox.h"

namespace terse::testing {

struct Pairs {
  std::vector<int32_t> indices;
  std::vector<float> values;
  SparseVector view() const {
    return SparseVector{indices.data(), values.data(), static_cast<int64_t>(indices.size())};
  }
};

// Each index of [0, numel) is kept with probability `density` (sorted by construction). Values
// span 2^-11 to 2^10 so a sum in any order but rank order changes the bits; with `exact` they are
// multiples of 1/4 in [-4, 4] (sums exact in any order).
inline Pairs make_pairs(int rank, int64_t numel, double density, uint64_t salt,
                        bool exact = false) {
  PhiloxStream rng(salt * 7919u + 17u, static_cast<uint64_t>(rank));
  Pairs p;
  const uint32_t cut = static_cast<uint32_t>(density * 4294967295.0);
  for (int64_t i = 0; i < numel; ++i) {
    if (density < 1.0 && rng.next_u32() > cut) continue;
    p.indices.push_back(static_cast<int32_t>(i));
    p.values.push_back(exact ? static_cast<float>(static_cast<int>(rng.below(33)) - 16) * 0.25f
                             : (rng.uniform() - 0.5f) *
                                   std::ldexp(1.0f, static_cast<int>(rng.below(21)) - 10));
  }
  return p;
}

// Rank 0's pairs added into zeros, then rank 1's, ...; divided by N for the average.
inline std::vector<float> reference(const std::vector<Pairs>& all, int64_t numel, bool average) {
  std::vector<float> out(static_cast<size_t>(numel), 0.0f);
  for (const Pairs& p : all) {
    for (size_t i = 0; i < p.indices.size(); ++i) {
      out[static_cast<size_t>(p.indices[i])] += p.values[i];
    }
  }
  if (average && all.size() > 1) {
    for (float& x : out) x /= static_cast<float>(all.size());
  }
  return out;
}

// First element whose bits differ, or -1.
inline int64_t first_bit_difference(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (float_to_bits(a[i]) != float_to_bits(b[i])) return static_cast<int64_t>(i);
  }
  return -1;
}

}  // namespace terse::testing

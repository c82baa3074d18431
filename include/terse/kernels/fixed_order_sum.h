#pragma once

// The double sums of ScaledSign (||x||_1 = sum |x_i|) and QSGD (||x||_2^2 = sum x_i^2), in one
// fixed order that a vectorised CPU loop and a parallel GPU reduction both follow, so both get
// the same bits (src/kernels/cuda/fixed_sum.cuh is the GPU side). A strictly sequential sum
// would be reproducible too, but it cannot run in parallel on the GPU, nor vectorise on the CPU.
//
// The order:
//  1. Lane partials. x is cut into blocks of kBlock = 2048 elements (the last one may be
//     shorter); lane j (0..15) of block b sums, in double and in order, the terms of elements
//     2048 b + j + 16 t for t = 0, 1, ... below n, starting from +0. The partials are numbered
//     p_m, m = 16 b + j: M = 16 ceil(n / 2048) of them (lanes past a short block's end are +0).
//  2. A balanced pairwise tree over p_0 .. p_{M-1}: neighbours (p_0 + p_1), (p_2 + p_3), ...,
//     then neighbouring pairs, and so on, as if M were padded with +0 to a power of two (adding
//     +0 changes nothing: every term and partial is >= +0 or NaN). The 16 lanes of a block form
//     one aligned subtree, so the block's sum is ((p0 + p1) + (p2 + p3)) + ... .
// Every addition is a double addition rounded to nearest; a term is |double(x)| or
// double(x) * double(x), both exact, so there is nothing else to agree on. Rounding error: each
// lane adds at most 128 terms and the tree is log2(M) deep, so the relative error is below
// (128 + log2 M) * 2^-53, far below the float the sum becomes. A NaN term gives NaN, an
// infinite term +Inf; no finite float input overflows the double.
#include <cmath>
#include <cstdint>

#include "terse/core/macros.h"

namespace terse::fixed_sum {

inline constexpr int64_t kBlock = 2048;
inline constexpr int kLanes = 16;
inline constexpr int kLaneTerms = static_cast<int>(kBlock / kLanes);  // terms per lane partial

enum class Term { kAbs, kSquare };  // |double(x)| or double(x) * double(x)

TERSE_HD inline double term(float v, Term t) {
  const double d = v;
  return t == Term::kAbs ? fabs(d) : d * d;
}

// The number of lane partials of n elements, M above.
TERSE_HD inline int64_t num_partials(int64_t n) { return (n + kBlock - 1) / kBlock * kLanes; }

// The pairwise tree of step 2, fed one leaf at a time in order, in O(log M) memory: a stack of
// the complete aligned subtrees so far (sizes strictly decreasing), merged as they pair up.
// finish() adds the remaining subtrees right to left, which is the zero-padded tree's root.
class PairwiseTree {
 public:
  void push(double v) {
    int level = 0;
    while (top_ > 0 && level_[top_ - 1] == level) {
      v = value_[--top_] + v;
      ++level;
    }
    value_[top_] = v;
    level_[top_++] = level;
  }
  double finish() const {
    if (top_ == 0) return 0.0;
    int i = top_ - 1;
    double v = value_[i];
    while (i > 0) v = value_[--i] + v;
    return v;
  }

 private:
  double value_[64];  // M < 2^64: at most 64 complete subtrees
  int level_[64];
  int top_ = 0;
};

// The sum of the terms of x[0, n) in the order above (host code).
inline double host_sum(const float* x, int64_t n, Term t) {
  PairwiseTree tree;
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const int64_t len = n - b0 < kBlock ? n - b0 : kBlock;
    const float* v = x + b0;
    double lane[kLanes] = {};
    const int64_t rows = len / kLanes;
    // Each lane is its own sequential sum, so the loop vectorises without reassociation.
    if (t == Term::kAbs) {
      for (int64_t r = 0; r < rows; ++r)
        for (int j = 0; j < kLanes; ++j) lane[j] += fabs(static_cast<double>(v[kLanes * r + j]));
    } else {
      for (int64_t r = 0; r < rows; ++r) {
        for (int j = 0; j < kLanes; ++j) {
          const double d = v[kLanes * r + j];
          lane[j] += d * d;
        }
      }
    }
    for (int64_t j = 0; j < len - kLanes * rows; ++j) lane[j] += term(v[kLanes * rows + j], t);
    for (int j = 0; j < kLanes; ++j) tree.push(lane[j]);
  }
  return tree.finish();
}

}  // namespace terse::fixed_sum

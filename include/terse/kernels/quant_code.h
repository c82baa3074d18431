#pragma once

// The scalar rules of block-wise 8-bit quantization (blockwise_quant.h, spec optimizers.md §10)
// that the CPU and the GPU (src/kernels/cuda/eightbit_step.cu) both run, so both store the same
// codes and absmax bits.

#include <cstdint>

#include "terse/core/dtype.h"
#include "terse/core/macros.h"

namespace terse {

// Elements per absmax: bnb's block size for optimizer states since PR #1365 (it was 2048 in the
// paper).
inline constexpr int64_t kQuantBlockSize = 256;

// The nearest code to x (x already scaled by 1 / absmax) in a 256-code map: the number of the
// 255 midpoints between adjacent codes that are < x, so a value exactly on a midpoint takes the
// lower code (as bnb's binary search) and NaN takes code 0. `tree` holds the midpoints in
// Eytzinger (breadth-first) order, tree[1..255], tree[0] unused (DynamicMap::search_tree()): the
// search is 8 steps of i = 2i + (tree[i] < x) and ends at 256 + the count. On a GPU the nodes of
// one level are adjacent in shared memory, so a warp's loads spread over the banks. A signed map
// keeps the sign of a negative value (including -0.0) whose nearest code is the zero code
// `zero`: it takes the smallest negative code, zero - 1, as bnb does.
TERSE_HD TERSE_FORCEINLINE uint32_t midpoints_below(const float* tree, float x) {
  uint32_t i = 1;
  for (int level = 0; level < 8; ++level) i = 2 * i + (tree[i] < x ? 1u : 0u);
  return i - 256;
}

// dynamic_map_code's sign rule on a count of midpoints below x.
TERSE_HD TERSE_FORCEINLINE uint8_t signed_code(uint32_t c, float x, bool is_signed, uint32_t zero) {
  if (is_signed) c -= ((float_to_bits(x) >> 31) != 0 && c == zero) ? 1u : 0u;
  return static_cast<uint8_t>(c);
}

TERSE_HD TERSE_FORCEINLINE uint8_t dynamic_map_code(const float* tree, float x, bool is_signed,
                                                    uint32_t zero) {
  return signed_code(midpoints_below(tree, x), x, is_signed, zero);
}

// The same codes from one table read and one compare (the GPU step's form: eight dependent
// shared-memory reads per value were its bottleneck). |x| in [2^-25, 2) falls in a bucket of
// its sign, exponent and top 7 mantissa bits, |x| below 2^-25 in a bucket of its sign: each
// bucket holds at most one midpoint (the map's codes are at least 1.4 % of their value apart; a
// bucket is 0.8 %), so the count below x is base[bucket] (the count below the bucket's lowest
// value) plus one if the next midpoint, mid[base], is below x. mid holds the 255 midpoints in
// order and +inf at 255. Larger magnitudes, infinities and NaN take the tree (DynamicMap builds
// and checks the tables: bucket_base(), sorted_midpoints()).
inline constexpr uint32_t kQuantBucketLowExp = 127 - 25;  // biased exponent of 2^-25
inline constexpr uint32_t kQuantBucketHighExp = 128;      // of 2: from here on, the tree
inline constexpr uint32_t kQuantBucketsPerSign =
    1 + ((kQuantBucketHighExp - kQuantBucketLowExp) << 7);

// The bucket of |x|'s bits below 2 << 23 (kQuantBucketHighExp << 23).
TERSE_HD TERSE_FORCEINLINE uint32_t quant_bucket(uint32_t abs_bits) {
  return abs_bits < (kQuantBucketLowExp << 23) ? 0u
                                               : (abs_bits >> 16) - (kQuantBucketLowExp << 7) + 1;
}

// The count of midpoints below x from the tables, for |x| < 2 (so not NaN).
TERSE_HD TERSE_FORCEINLINE uint32_t bucket_midpoints_below(const uint8_t* base, const float* mid,
                                                           float x) {
  const uint32_t b = float_to_bits(x);
  const uint32_t c = base[(b >> 31) * kQuantBucketsPerSign + quant_bucket(b & 0x7fffffffu)];
  return c + (mid[c] < x ? 1u : 0u);
}

TERSE_HD TERSE_FORCEINLINE uint8_t bucket_map_code(const uint8_t* base, const float* mid,
                                                   const float* tree, float x, bool is_signed,
                                                   uint32_t zero) {
  const bool in_tables = (float_to_bits(x) & 0x7fffffffu) < (kQuantBucketHighExp << 23);
  const uint32_t c = in_tables ? bucket_midpoints_below(base, mid, x) : midpoints_below(tree, x);
  return signed_code(c, x, is_signed, zero);
}

// |x| as bits: for non-negative floats the unsigned order of the bits is the order of the
// values, and every NaN lies above +inf, so the largest of these over a block is its absmax,
// whatever order a reduction takes them in.
TERSE_HD TERSE_FORCEINLINE uint32_t abs_bits(float x) { return float_to_bits(x) & 0x7fffffffu; }

// The block absmax from the largest abs_bits of the block: that value, or the quiet NaN
// 0x7fc00000 when any element is NaN (one NaN for every payload, on every device).
TERSE_HD TERSE_FORCEINLINE float absmax_of_bits(uint32_t max_abs_bits) {
  return bits_to_float(max_abs_bits > 0x7f800000u ? 0x7fc00000u : max_abs_bits);
}

}  // namespace terse

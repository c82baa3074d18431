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
TERSE_HD TERSE_FORCEINLINE uint8_t dynamic_map_code(const float* tree, float x, bool is_signed,
                                                    uint32_t zero) {
  uint32_t i = 1;
  for (int level = 0; level < 8; ++level) i = 2 * i + (tree[i] < x ? 1u : 0u);
  uint32_t c = i - 256;
  if (is_signed) c -= ((float_to_bits(x) >> 31) != 0 && c == zero) ? 1u : 0u;
  return static_cast<uint8_t>(c);
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

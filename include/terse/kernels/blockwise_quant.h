#pragma once

// Block-wise 8-bit quantization with a DynamicMap (bitsandbytes' optimizer state format, spec
// optimizers.md §10): a buffer is cut into blocks of kQuantBlockSize elements (the last may be
// shorter); each block stores one f32 absmax = max |x| over the block and one code per element,
// code = nearest map value to x / absmax, so x ≈ map[code] * absmax. Round-trip error per
// element <= absmax * DynamicMap::max_gap() / 2 (the negative end is -0.99296875 of absmax, which
// sits exactly at that bound); a zero block stores absmax 0 and the zero code.
//
// Non-finite values are not representable by a code; a NaN or inf anywhere in a block makes the
// block's absmax NaN or inf, so the whole block dequantizes to non-finite values: the damage shows
// instead of being silently turned into zeros.

#include <cstdint>
#include <cstring>

#include "terse/kernels/dynamic_map.h"
#include "terse/kernels/quant_code.h"

namespace terse {

inline int64_t quant_num_blocks(int64_t n) { return (n + kQuantBlockSize - 1) / kQuantBlockSize; }

// max |x[i]| over i < n; the quiet NaN if any element is NaN (std::max and fmaxf would drop
// it). The max is taken over abs_bits (quant_code.h), as the GPU step takes it: the same value
// in any order the `omp simd` lanes combine (every abs_bits fits an int32, whose max SSE4.1
// has).
inline float block_absmax(const float* x, int64_t n) {
  int32_t m = 0;
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) {
    const auto a = static_cast<int32_t>(abs_bits(x[i]));
    m = a > m ? a : m;
  }
  return absmax_of_bits(static_cast<uint32_t>(m));
}

// codes[i] = map.quantize(x[i] * (1 / absmax)), n <= kQuantBlockSize; the zero code when absmax
// is not > 0 (zero block, or NaN: that block dequantizes to NaN through its absmax anyway). The
// reciprocal (bnb divides with __fdividef, also approximate) differs from x / absmax by an ulp at
// most, which moves a code only for x within an ulp of a midpoint. The GPU step
// (cuda_eightbit_step.h) computes the same scale and product and searches the same codes.
inline void quantize_block(const float* x, int64_t n, float absmax, const DynamicMap& map,
                           uint8_t* codes) {
  if (!(absmax > 0.0f)) {
    for (int64_t i = 0; i < n; ++i) codes[i] = map.zero_code();
    return;
  }
  const float inv = 1.0f / absmax;
  // Codes go to a local array first: a store through uint8_t* may alias the map, which would
  // make the compiler reload its tables every element.
  uint8_t local[kQuantBlockSize];
  map.quantize_scaled(x, n, inv, local);
  std::memcpy(codes, local, static_cast<size_t>(n));
}

inline void dequantize_block(const uint8_t* codes, int64_t n, float absmax, const DynamicMap& map,
                             float* out) {
  const float* code = map.codes();
  for (int64_t i = 0; i < n; ++i) out[i] = code[codes[i]] * absmax;
}

// Whole buffers: absmax holds quant_num_blocks(n) floats.
inline void quantize_blockwise(const float* x, int64_t n, const DynamicMap& map, uint8_t* codes,
                               float* absmax) {
  for (int64_t b = 0; b * kQuantBlockSize < n; ++b) {
    const int64_t lo = b * kQuantBlockSize;
    const int64_t len = n - lo < kQuantBlockSize ? n - lo : kQuantBlockSize;
    absmax[b] = block_absmax(x + lo, len);
    quantize_block(x + lo, len, absmax[b], map, codes + lo);
  }
}

inline void dequantize_blockwise(const uint8_t* codes, const float* absmax, int64_t n,
                                 const DynamicMap& map, float* out) {
  for (int64_t b = 0; b * kQuantBlockSize < n; ++b) {
    const int64_t lo = b * kQuantBlockSize;
    const int64_t len = n - lo < kQuantBlockSize ? n - lo : kQuantBlockSize;
    dequantize_block(codes + lo, len, absmax[b], map, out + lo);
  }
}

}  // namespace terse

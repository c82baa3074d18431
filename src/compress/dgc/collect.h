#pragma once

// The threshold scan shared by dgc_select (a pass over all of x) and DgcMemory::step (the same
// scan over each chunk of V it has just written). Private to terse_dgc.

#include <cmath>
#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "terse/compress/dgc/sparse_selection.h"

namespace terse::dgc_detail {

// Bit j of the result is |x[j]| >= thr, for j in [0, 32). NaN compares false, so it is never
// selected. SSE2 (every x86-64) compares 4 at a time; elsewhere the integer OR of shifted
// comparisons vectorises.
inline uint32_t block_mask(const float* x, float thr) {
#if defined(__SSE2__)
  const __m128 abs_bits = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
  const __m128 t = _mm_set1_ps(thr);
  uint32_t m = 0;
  for (int j = 0; j < 32; j += 4) {
    const __m128 a = _mm_and_ps(_mm_loadu_ps(x + j), abs_bits);
    m |= static_cast<uint32_t>(_mm_movemask_ps(_mm_cmpge_ps(a, t))) << j;
  }
  return m;
#else
  uint32_t m = 0;
  for (int j = 0; j < 32; ++j) m |= (std::fabs(x[j]) >= thr ? 1u : 0u) << j;
  return m;
#endif
}

// Appends to c every i in [begin, end) with |x[i]| >= thr. Each block of 32 becomes a bit mask
// and only its set bits are visited, so the pass costs one read of x plus a few instructions
// per hit, however low the threshold (a first lowering of the threshold multiplies the hits
// about tenfold on a normal distribution).
inline void collect_at_least(const float* x, int64_t begin, int64_t end, float thr,
                             DgcCandidates& c) {
  constexpr int64_t kBlock = 32;
  int64_t i = begin;
  for (; i + kBlock <= end; i += kBlock) {
    uint32_t m = block_mask(x + i, thr);
    while (m != 0) {
      const int64_t at = i + __builtin_ctz(m);
      c.idx.push_back(at);
      c.mag.push_back(std::fabs(x[at]));
      m &= m - 1;
    }
  }
  for (; i < end; ++i) {
    const float a = std::fabs(x[i]);
    if (a >= thr) {
      c.idx.push_back(i);
      c.mag.push_back(a);
    }
  }
}

}  // namespace terse::dgc_detail

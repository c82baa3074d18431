#include "terse/kernels/quant_avx2.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "terse/kernels/dynamic_map.h"
#endif

namespace terse::quant_avx2 {

#if defined(__x86_64__)

bool has_avx2() {
  static const bool kHas = __builtin_cpu_supports("avx2");
  return kHas;
}

namespace {

// DynamicMap::quantize_scaled's rule on 8 lanes (its comment explains fine and low).
__attribute__((target("avx2"))) __m256i codes8(const uint32_t* fine, __m256 v) {
  const __m256i bits = _mm256_castps_si256(v);
  const __m256i e =
      _mm256_i32gather_epi32(reinterpret_cast<const int*>(fine), _mm256_srli_epi32(bits, 15), 4);
  const __m256i low = _mm256_and_si256(_mm256_xor_si256(bits, _mm256_srai_epi32(bits, 31)),
                                       _mm256_set1_epi32(0x7fff));
  // cmpgt is signed, fine for 15-bit values; a true lane is -1, so subtract it. The sum is
  // taken in 8 bits as fine_code's cast does (255 + 1 = 0: the NaNs in the bucket of +inf),
  // where the saturating packs below would keep 256 as 255.
  const __m256i ff = _mm256_set1_epi32(0xff);
  return _mm256_and_si256(
      _mm256_sub_epi32(_mm256_and_si256(e, ff), _mm256_cmpgt_epi32(low, _mm256_srli_epi32(e, 16))),
      ff);
}

}  // namespace

__attribute__((target("avx2"))) void quantize(const uint32_t* fine, const float* x, int64_t n,
                                              float scale, uint8_t* out) {
  const __m256 s = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i a = codes8(fine, _mm256_mul_ps(_mm256_loadu_ps(x + i), s));
    const __m256i b = codes8(fine, _mm256_mul_ps(_mm256_loadu_ps(x + i + 8), s));
    // The packs work per 128-bit lane: bytes come out as a0-3 b0-3 | a4-7 b4-7 (each twice).
    const __m256i w = _mm256_packus_epi32(a, b);
    const __m256i bytes = _mm256_packus_epi16(w, w);
    const __m256i ordered =
        _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 0, 0, 0, 0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_castsi256_si128(ordered));
  }
  for (; i < n; ++i) out[i] = DynamicMap::fine_code(fine, x[i] * scale);
}

#else

bool has_avx2() { return false; }

#endif

}  // namespace terse::quant_avx2

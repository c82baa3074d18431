#pragma once

// The AVX2 form of DynamicMap::quantize_scaled's loop (src/kernels/cpu/quant_avx2.cc), picked at
// run time: the build targets baseline x86-64, and GCC's generic tuning does not emit gathers
// even in an AVX2 clone (1.8 instead of 3.1 ms per 4M codes here). Same rule, same codes. Off
// x86-64 there is none and has_avx2() is false. (A gather does not help dequantize_block: the
// portable loop is faster.)

#include <cstdint>

namespace terse::quant_avx2 {

// Whether this CPU runs AVX2 (cached; false off x86-64).
bool has_avx2();

#if defined(__x86_64__)
// out[i] = code of x[i] * scale through DynamicMap's 17-bit table `fine`.
void quantize(const uint32_t* fine, const float* x, int64_t n, float scale, uint8_t* out);
#endif

}  // namespace terse::quant_avx2

// gpu_check_fast_ieee (fast_ieee_probe.h): built with the flags of the library's kernels, so `/`
// and sqrtf are the IEEE forms the 8-bit step would otherwise run.
#include <cuda_runtime.h>

#include <cmath>

#include "counting_probe.cuh"
#include "fast_ieee.cuh"
#include "fast_ieee_probe.h"

namespace terse::parity {
namespace {

__device__ uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A float of random sign and mantissa and a biased exponent in [lo, hi] (at most 255: inf and
// NaN).
__device__ float with_exponent(uint64_t r, uint32_t lo, uint32_t hi) {
  uint32_t e = lo + static_cast<uint32_t>((r >> 32) % (hi - lo + 1));
  e = e > 255 ? 255 : e;
  return __uint_as_float((static_cast<uint32_t>(r) & 0x807fffffu) | e << 23);
}

// An operand of kind `k` for a fast range of biased exponents [lo, hi].
__device__ float operand(uint64_t r, int k, uint32_t lo, uint32_t hi) {
  switch (k) {
    case 0:
      return __uint_as_float(static_cast<uint32_t>(r));  // anything, NaN and inf included
    case 1:
      return with_exponent(r, lo - 8, hi + 8);  // the range and a little past it
    case 2: {  // the edges: the lowest and highest exponents inside and the ones just outside
      const uint32_t e = (r & 2) ? lo - (r & 1) : hi + (r & 1);
      return with_exponent(r, e, e);
    }
    case 3:
      return (r & 1) ? -0.0f : 0.0f;
    default:
      return with_exponent(r, 127 - 30, 127 + 10);  // optimizer magnitudes
  }
}

__global__ void check_kernel(uint64_t n, uint64_t seed, FastIeeeCounts* out) {
  unsigned long long div_fast = 0, div_wrong = 0, sqrt_fast = 0, sqrt_wrong = 0;
  unsigned long long sqrt_div_fast = 0, sqrt_div_wrong = 0;
  for (uint64_t i = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x; i < n;
       i += uint64_t{gridDim.x} * blockDim.x) {
    const uint64_t r1 = splitmix(seed ^ (2 * i)), r2 = splitmix(seed ^ (2 * i + 1));
    const int ka = static_cast<int>(r1 % 5), kb = static_cast<int>(r2 % 5);
    const float a = operand(r1 >> 3, ka, 127 - 64, 127 + 63);
    const float b = operand(r2 >> 3, kb == 3 ? 4 : kb, 127 - 40, 127 + 39);
    cuda_fast::FastIeee fast;
    const float q = fast.div(a, b);
    if (!fast.slow) {
      ++div_fast;
      if (__float_as_uint(q) != __float_as_uint(a / b)) {
        ++div_wrong;
        out->div_example[0] = __float_as_uint(a);
        out->div_example[1] = __float_as_uint(b);
      }
    }
    // sqrt: non-negative operands mostly (a negative one is always slow), zeros and subnormals.
    const float x = ka == 0 ? a : fabsf(operand(r1 >> 5, ka, 26, 254));
    cuda_fast::FastIeee fs;
    const float s = fs.sqrt(x);
    if (!fs.slow) {
      ++sqrt_fast;
      if (__float_as_uint(s) != __float_as_uint(sqrtf(x))) {
        ++sqrt_wrong;
        out->sqrt_example = __float_as_uint(x);
      }
    }
    cuda_fast::FastIeee fsd;
    const float sd = fsd.sqrt_div(x, b);
    if (!fsd.slow) {
      ++sqrt_div_fast;
      if (__float_as_uint(sd) != __float_as_uint(sqrtf(x) / b)) ++sqrt_div_wrong;
    }
  }
  atomicAdd(reinterpret_cast<unsigned long long*>(&out->div_fast), div_fast);
  atomicAdd(reinterpret_cast<unsigned long long*>(&out->div_wrong), div_wrong);
  atomicAdd(reinterpret_cast<unsigned long long*>(&out->sqrt_fast), sqrt_fast);
  atomicAdd(reinterpret_cast<unsigned long long*>(&out->sqrt_wrong), sqrt_wrong);
  atomicAdd(reinterpret_cast<unsigned long long*>(&out->sqrt_div_fast), sqrt_div_fast);
  atomicAdd(reinterpret_cast<unsigned long long*>(&out->sqrt_div_wrong), sqrt_div_wrong);
}

}  // namespace

bool gpu_check_fast_ieee(uint64_t n, uint64_t seed, FastIeeeCounts& out, std::string& error) {
  out = FastIeeeCounts{};
  return run_counting_probe(FastIeeeCounts{}, out, error,
                            [&](FastIeeeCounts* d) { check_kernel<<<1024, 256>>>(n, seed, d); });
}

}  // namespace terse::parity

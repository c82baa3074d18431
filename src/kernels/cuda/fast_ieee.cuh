#pragma once

// IEEE division and square root (round to nearest, as `/` and sqrtf under -prec-div=true and
// -prec-sqrt=true) without a branch per call. nvcc's own code for each takes a fast path of a
// hardware approximation and two FMA corrections, checks the operands, and calls a slow routine
// for operands outside a range: one branch region per call, which splits the 8-bit step's
// unrolled loop into blocks the compiler cannot interleave (most of its warps then wait on
// dependent arithmetic). FastIeee runs the same fast paths for operands inside a range where
// they are exact, and records in `slow` that some call's operands were outside it; its result
// is then unspecified and the caller recomputes with `/` and sqrtf (eightbit_kernel.cuh does,
// for a whole lane's share of a block, once per block). Internal to src/kernels/cuda.

#include <cstdint>

namespace terse::cuda_fast {

__device__ __forceinline__ float approx_rcp(float b) {
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(b));
  return r;
}

__device__ __forceinline__ float approx_rsqrt(float x) {
  float r;
  asm("rsqrt.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}

// bits in [lo, hi] with one subtraction and one unsigned compare.
__device__ __forceinline__ bool bits_within(uint32_t bits, uint32_t lo, uint32_t hi) {
  return bits - lo <= hi - lo;
}

struct FastIeee {
  bool slow = false;

  // a / b: ptxas's fast path for div.rn.f32, instruction for instruction (a reciprocal refined
  // by one Newton step, the quotient, its remainder by FMA and one correction), which is
  // correctly rounded wherever nvcc's operand check (FCHK) lets it through. Taken here only for
  // |b| in [2^-40, 2^40] and |a| in {0} or [2^-64, 2^64], narrower than that check: the quotient
  // and the remainder a - b*q0 (lowest bit at least 2^-112) are normal floats. a = ±0 returns
  // the product a * (1/b), a zero of the right sign (the correction's addition of zeros would
  // lose a -0).
  __device__ __forceinline__ float div(float a, float b) {
    const uint32_t ab = __float_as_uint(a) & 0x7fffffffu;
    slow |= !(ab == 0 || bits_within(ab, (127u - 64) << 23, ((127u + 64) << 23) - 1));
    return div_checked_a(a, b);
  }

  // sqrt(x) / b. When sqrt's operand passes its check, the root is 0 or in [2^-51, 2^64), inside
  // div's range for a, so only b is checked.
  __device__ __forceinline__ float sqrt_div(float x, float b) { return div_checked_a(sqrt(x), b); }

  // div for an `a` already known to be 0 or in [2^-64, 2^64] (or already marked slow).
  __device__ __forceinline__ float div_checked_a(float a, float b) {
    const uint32_t bb = __float_as_uint(b) & 0x7fffffffu;
    slow |= !bits_within(bb, (127u - 40) << 23, ((127u + 40) << 23) - 1);
    const float r0 = approx_rcp(b);
    const float r = __fmaf_rn(r0, __fmaf_rn(r0, -b, 1.0f), r0);
    const float q0 = __fmul_rn(a, r);
    const float q = __fmaf_rn(r, __fmaf_rn(q0, -b, a), q0);
    return (__float_as_uint(a) & 0x7fffffffu) == 0 ? q0 : q;
  }

  // sqrt(x): ptxas's fast path for sqrt.rn.f32 (x * rsqrt(x), one FMA correction), for exactly
  // the operands its own check sends there (bits in [0x0d000000, 0x7f7fffff]: positive normals
  // from 2^-101 up); ±0 returns itself. Anything else is slow.
  __device__ __forceinline__ float sqrt(float x) {
    const uint32_t xb = __float_as_uint(x);
    const bool zero = (xb & 0x7fffffffu) == 0;
    slow |= !(zero || bits_within(xb, 0x0d000000u, 0x7f7fffffu));
    const float r = approx_rsqrt(x);
    const float y = __fmul_rn(x, r);
    const float h = __fmul_rn(r, 0.5f);
    const float s = __fmaf_rn(__fmaf_rn(-y, y, x), h, y);
    return zero ? x : s;
  }
};

}  // namespace terse::cuda_fast

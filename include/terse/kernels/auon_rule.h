#pragma once

#include <cstdint>
#include <cstring>

#include "terse/core/dtype.h"
#include "terse/core/macros.h"
#include "terse/kernels/torch_lerp.h"

namespace terse {

// cosh(x) rounded to float, for AuON's r = sqrt(mean(cosh(x)^2)). Computed in double from +, -,
// *, / only (exp by Cody-Waite reduction and a degree-13 Taylor polynomial, error ~1e-16), so
// the host and a GPU give the same bits, where libm's coshf and CUDA's differ in the last bit;
// the float result is the correctly rounded cosh except within ~1e-16 of a rounding tie
// (checked against (float)cosh(double) on 11.5M floats in [0, 104]: no difference).
TERSE_HD inline float auon_cosh(float x) {
  const double y = x < 0 ? -static_cast<double>(x) : static_cast<double>(x);
  // cosh(100) > FLT_MAX: infinity (and NaN stays NaN, failing both tests).
  if (!(y <= 100.0)) return y > 100.0 ? bits_to_float(0x7f800000u) : x;
  const double kLn2Hi = 6.93147180369123816490e-01;  // 32 significant bits: k * hi is exact
  const double kLn2Lo = 1.90821492927058770002e-10;
  const auto k = static_cast<int>(y * 1.4426950408889634 + 0.5);  // round(y / ln 2), y >= 0
  const double r = (y - k * kLn2Hi) - k * kLn2Lo;                 // |r| <= ~0.347
  // exp(r) = 1 + r (1 + r/2 (1 + r/3 (... (1 + r/13)))), the Taylor sum to r^13 / 13! (the
  // remainder is below 4e-18).
  double e = 1.0;
  for (int j = 13; j >= 1; --j) e = 1.0 + e * r / j;
  const uint64_t two_k_bits = static_cast<uint64_t>(k + 1023) << 52;  // 2^k, 0 <= k <= 145
  double two_k;
  memcpy(&two_k, &two_k_bits, sizeof two_k);
  e = e * two_k;
  return static_cast<float>(0.5 * (e + 1.0 / e));
}

// AuON's parameter update, one element (ryyzn9/AuON `AuON.step`; spec optimizers.md §14), after
// the per-tensor reductions gave `coef` (-lr / (r + 1e-8), times 1 / (||G|| + 1e-7) in the
// paper's form; 0 when ||G|| = 0):
//   G = lerp(g, m, momentum)          recomputed from the stored momentum instead of kept
//   p = p * (1 - lr * weight_decay) + coef * G
// State: s0 = momentum_buffer (read; LerpMomentumRule updated it earlier in the step).
struct AuonUpdateRule {
  static constexpr int kNumStates = 1;

  float momentum = 0.95f;
  float decay = 1;  // 1 - lr * weight_decay, or exactly 1 when weight_decay == 0
  float coef = 0;

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& s0, float& /*s1*/,
                                             float& /*s2*/) const {
    const float G = torch_lerp(g, s0, momentum);
    p = p * decay + coef * G;
  }
};

}  // namespace terse

#pragma once

// The division and square root a Rule spells through a Math policy (BnbAdamRule::apply), so a
// kernel can pass its own exact forms (src/kernels/cuda/fast_ieee.cuh) where the compiler's cost a
// branch per call. IeeeMath is `/` and std::sqrt: the CPU's, and the GPU's under -prec-div=true
// and -prec-sqrt=true.

#include <cmath>

#include "terse/core/macros.h"

namespace terse {

struct IeeeMath {
  TERSE_HD TERSE_FORCEINLINE float div(float a, float b) const { return a / b; }
  TERSE_HD TERSE_FORCEINLINE float sqrt(float x) const { return std::sqrt(x); }
  // sqrt(x) / b, in that order: a kernel's form can skip checking the quotient's dividend.
  TERSE_HD TERSE_FORCEINLINE float sqrt_div(float x, float b) const { return div(sqrt(x), b); }
};

}  // namespace terse

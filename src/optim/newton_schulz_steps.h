#pragma once

// The element-wise steps of NewtonSchulz's bf16 emulation (newton_schulz.cc) that the CUDA
// iteration (cuda/newton_schulz.cu) repeats: one definition, so both give the same bits from the
// same inputs.

#include "terse/core/dtype.h"
#include "terse/core/macros.h"

namespace terse::ns_steps {

TERSE_HD inline float bf16_round(float v) { return to_float(to_bfloat16(v)); }

// The reference's `k * X + Y` on bf16 tensors: round(round(k * x) + round(y)).
TERSE_HD inline float bf16_axpy(float k, float x, float y) {
  return bf16_round(bf16_round(k * x) + bf16_round(y));
}

// What X's entries are divided by, from its Frobenius norm (X / (||X|| + eps)): in bf16 the
// norm and the sum are rounded, as the reference's bf16 tensors are.
TERSE_HD inline float divisor(float norm, float eps, bool bf16) {
  return bf16 ? bf16_round(bf16_round(norm) + eps) : norm + eps;
}

// One normalised entry: x / divisor, rounded in bf16.
TERSE_HD inline float normalized(float x, float den, bool bf16) {
  return bf16 ? bf16_round(x / den) : x / den;
}

}  // namespace terse::ns_steps

#pragma once

// One element of a bitsandbytes-style 8-bit optimizer step (spec optimizers.md §10), run by the
// CPU block loop (eightbit_block_step.h) and the GPU kernel (src/kernels/cuda/eightbit_step.cu)
// alike, so both give the same bits (the CPU built with -ffp-contract=off, the GPU with
// -fmad=false and IEEE division and square root).

#include <cfloat>
#include <cmath>
#include <cstdint>

#include "terse/core/dtype.h"
#include "terse/core/macros.h"

namespace terse {

// kSkipNonFiniteGrad is bnb's 2-state rule: an element whose gradient is NaN or inf keeps its
// parameter `old` (a 16-bit parameter round-trips exactly) and gets zero states. Bit-mask
// selects: with `finite ? x : y` GCC sinks the Rule into a branch it cannot if-convert (sqrt and
// division may trap), and the CPU loop stays scalar.
template <bool kSkipNonFiniteGrad>
TERSE_HD TERSE_FORCEINLINE void skip_non_finite_grad([[maybe_unused]] float old,
                                                     [[maybe_unused]] float g,
                                                     [[maybe_unused]] float& p,
                                                     [[maybe_unused]] float& s0,
                                                     [[maybe_unused]] float& s1) {
  if constexpr (kSkipNonFiniteGrad) {
    const uint32_t keep = std::fabs(g) <= FLT_MAX ? ~0u : 0u;
    s0 = bits_to_float(float_to_bits(s0) & keep);
    s1 = bits_to_float(float_to_bits(s1) & keep);
    p = bits_to_float((float_to_bits(p) & keep) | (float_to_bits(old) & ~keep));
  }
}

// The Rule on the dequantized states s0, s1 (s1 unused when Rule::kNumStates is 1; the Rule's
// third slot is scratch), then the skip.
template <typename Rule, bool kSkipNonFiniteGrad>
TERSE_HD TERSE_FORCEINLINE void eightbit_update(const Rule& r, float& p, float g, float& s0,
                                                float& s1) {
  const float old = p;
  float s2 = 0.0f;
  r(p, g, s0, s1, s2);
  skip_non_finite_grad<kSkipNonFiniteGrad>(old, g, p, s0, s1);
}

// The same with the division and square root of `math` (ieee_math.h), for a Rule that takes
// one (Rule::apply): the GPU step's exact branch-free forms.
template <typename Rule, bool kSkipNonFiniteGrad, typename Math>
TERSE_HD TERSE_FORCEINLINE void eightbit_update_with(const Rule& r, Math& math, float& p, float g,
                                                     float& s0, float& s1) {
  const float old = p;
  r.apply(math, p, g, s0, s1);
  skip_non_finite_grad<kSkipNonFiniteGrad>(old, g, p, s0, s1);
}

// The 32-bit path of the same optimizer (tensors below min_8bit_size): the Rule on f32 states,
// with no skip, as bnb's 32-bit kernels and the 32-bit optimizers.
template <typename Rule>
TERSE_HD TERSE_FORCEINLINE void f32_state_update(const Rule& r, float& p, float g, float& s0,
                                                 float& s1) {
  float s2 = 0.0f;
  r(p, g, s0, s1, s2);
}

}  // namespace terse

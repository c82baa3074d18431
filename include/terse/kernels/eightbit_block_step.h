#pragma once

// One pass of a bitsandbytes-style 8-bit optimizer over one quantization block (spec
// optimizers.md §10): dequantize the states (code -> map value * absmax), run the element Rule in
// f32 (the same Rule functors as the 32-bit optimizers: SgdRule, LionRule, BnbAdamRule), take the
// new block absmax, requantize. The parameter update uses the f32 states of this step, as bnb's
// kernels do; only what is stored is quantized. Small tensors keep f32 states and run
// f32_state_step, the same Rule without quantization. The per-element math (eightbit_element.h)
// and the codes and absmax (quant_code.h) are the GPU step's (cuda_eightbit_step.h): same bits.

#include <cstdint>

#include "terse/core/dtype.h"
#include "terse/kernels/blockwise_quant.h"
#include "terse/kernels/dynamic_map.h"
#include "terse/kernels/eightbit_element.h"

namespace terse {

// target_clones as the CPU multi-tensor executor (bits identical under -ffp-contract=off).
// Rule::kNumStates (1 or 2) quantized states: codes[k] (n codes of this block), *absmax[k] (this
// block's scale, read then overwritten) and maps[k]. kSkipNonFiniteGrad: eightbit_update's.
// GCC (12, with ASan) cannot see that the Rule loop writes s0[0, n) before block_absmax reads it,
// and warns; filling the arrays first would cost a store per element.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
template <typename Rule, bool kSkipNonFiniteGrad, typename T>
__attribute__((target_clones("avx512f", "avx2", "default"))) void eightbit_block_step(
    const Rule& rule, T* __restrict p, const T* __restrict g, int64_t n, uint8_t* const codes[2],
    float* const absmax[2], const DynamicMap* const maps[2]) {
  constexpr int kN = Rule::kNumStates;
  static_assert(kN == 1 || kN == 2, "8-bit optimizers keep one or two states");
  float s0[kQuantBlockSize];
  float s1[kQuantBlockSize];
  const Rule r = rule;
  // Dequantize first: the code gathers in the Rule loop would keep it from vectorising.
  dequantize_block(codes[0], n, *absmax[0], *maps[0], s0);
  if constexpr (kN > 1) dequantize_block(codes[1], n, *absmax[1], *maps[1], s1);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float x0 = s0[i];
    float x1 = kN > 1 ? s1[i] : 0.0f;
    float pv = load_as_float(p, i);
    eightbit_update<Rule, kSkipNonFiniteGrad>(r, pv, load_as_float(g, i), x0, x1);
    store_from_float(p, i, pv);
    s0[i] = x0;
    if constexpr (kN > 1) s1[i] = x1;
  }
  const float m0 = block_absmax(s0, n);
  *absmax[0] = m0;
  quantize_block(s0, n, m0, *maps[0], codes[0]);
  if constexpr (kN > 1) {
    const float m1 = block_absmax(s1, n);
    *absmax[1] = m1;
    quantize_block(s1, n, m1, *maps[1], codes[1]);
  }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// The 32-bit path of the same optimizer (tensors below min_8bit_size): s0, s1 are f32 states.
// Same loop as the CPU multi-tensor executor, so the bits match the 32-bit optimizers' where
// their Rule is the same.
template <typename Rule, typename T>
void f32_state_step(const Rule& rule, T* __restrict p, const T* __restrict g, int64_t n,
                    float* __restrict s0, float* __restrict s1) {
  constexpr int kN = Rule::kNumStates;
  const Rule r = rule;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float x0 = s0[i];
    float x1 = kN > 1 ? s1[i] : 0.0f;
    float pv = load_as_float(p, i);
    f32_state_update(r, pv, load_as_float(g, i), x0, x1);
    store_from_float(p, i, pv);
    s0[i] = x0;
    if constexpr (kN > 1) s1[i] = x1;
  }
}

}  // namespace terse

#pragma once

// The definition of cpu_multi_tensor_apply (declared in cpu_multi_tensor.h), for the one source
// file that instantiates it for a Rule: src/kernels/cpu/cpu_multi_tensor.cc for sgd and adam,
// src/optim/<name>.cc for the others, so adding an optimizer does not touch the executor. Build
// that file with -O3 -fno-math-errno -ffp-contract=off -fopenmp-simd, as terse_kernels is.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "terse/core/check.h"
#include "terse/core/dtype.h"
#include "terse/kernels/cpu_multi_tensor.h"
#include "terse/kernels/cpu_threads.h"

namespace terse {
namespace cpu_multi_tensor_detail {

// The element loop, compiled once per (Rule, storage type). `omp simd` plus -fno-math-errno
// lets sqrt and the selects vectorise; target_clones picks AVX-512 / AVX2 / baseline at load
// time, so the library is never built for one machine only. -ffp-contract=off (set for every
// library that includes this) keeps every clone and the scalar tail bit-identical.
// Rules with up to 3 states take operator()(p, g, s0, s1, s2); a Rule with kNumStates == 4
// takes operator()(p, g, s0, s1, s2, s3) (the 4th slot exists only for it, so the loops of
// the other Rules are unchanged).
template <typename Rule, typename T>
__attribute__((target_clones("avx512f", "avx2", "default"))) void run_range(
    const Rule& rule, T* __restrict p, const T* __restrict g, float* __restrict s0,
    float* __restrict s1, float* __restrict s2, float* __restrict s3, int64_t n) {
  constexpr int kN = Rule::kNumStates;
  static_assert(kN >= 0 && kN <= 4, "a Rule keeps at most 4 f32 states per element");
  const Rule r = rule;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    // Scalars, not a local array: GCC privatises an array per SIMD lane and then gives up.
    float x0 = 0, x1 = 0, x2 = 0, x3 = 0;
    if constexpr (kN > 0) x0 = s0[i];
    if constexpr (kN > 1) x1 = s1[i];
    if constexpr (kN > 2) x2 = s2[i];
    if constexpr (kN > 3) x3 = s3[i];
    float pv = load_as_float(p, i);
    if constexpr (kN > 3) {
      r(pv, load_as_float(g, i), x0, x1, x2, x3);
    } else {
      (void)x3;
      r(pv, load_as_float(g, i), x0, x1, x2);
    }
    store_from_float(p, i, pv);
    if constexpr (kN > 0) s0[i] = x0;
    if constexpr (kN > 1) s1[i] = x1;
    if constexpr (kN > 2) s2[i] = x2;
    if constexpr (kN > 3) s3[i] = x3;
  }
}

template <typename Rule>
void run_segment(const CpuTensorTask<Rule>& t, int64_t begin, int64_t end) {
  constexpr int kN = Rule::kNumStates;
  float* s[4] = {nullptr, nullptr, nullptr, nullptr};
  for (int k = 0; k < kN; ++k) s[k] = t.states[k] + begin;
  const int64_t n = end - begin;
  switch (t.param.dtype) {
    case DType::kF32:
      run_range(t.rule, static_cast<float*>(t.param.data) + begin,
                static_cast<const float*>(t.grad.data) + begin, s[0], s[1], s[2], s[3], n);
      break;
    case DType::kBF16:
      run_range(t.rule, static_cast<BFloat16*>(t.param.data) + begin,
                static_cast<const BFloat16*>(t.grad.data) + begin, s[0], s[1], s[2], s[3], n);
      break;
    case DType::kF16:
      run_range(t.rule, static_cast<Half*>(t.param.data) + begin,
                static_cast<const Half*>(t.grad.data) + begin, s[0], s[1], s[2], s[3], n);
      break;
    default:
      break;  // rejected by validate() before any thread starts
  }
}

template <typename Rule>
void validate(const std::vector<CpuTensorTask<Rule>>& tasks) {
  for (size_t i = 0; i < tasks.size(); ++i) {
    const auto& t = tasks[i];
    TERSE_CHECK(t.param.device.is_cpu() && t.grad.device.is_cpu(), InvalidArgument,
                "cpu_multi_tensor_apply: tensor ", i, " is not on the CPU (param ", t.param.str(),
                ", grad ", t.grad.str(), "); use the CUDA launcher for device tensors");
    TERSE_CHECK(t.param.dtype == DType::kF32 || t.param.dtype == DType::kBF16 ||
                    t.param.dtype == DType::kF16,
                InvalidArgument, "cpu_multi_tensor_apply: tensor ", i, " has dtype ",
                dtype_name(t.param.dtype), "; parameters must be f32, bf16 or f16");
    TERSE_CHECK(t.grad.dtype == t.param.dtype && t.grad.numel == t.param.numel, InvalidArgument,
                "cpu_multi_tensor_apply: tensor ", i, " has param ", t.param.str(), " but grad ",
                t.grad.str(), "; the gradient must match the parameter's dtype and numel");
    TERSE_CHECK(t.param.numel >= 0, InvalidArgument, "cpu_multi_tensor_apply: tensor ", i,
                " has negative numel ", t.param.numel);
    if (t.param.numel == 0) continue;
    bool ok = t.param.data != nullptr && t.grad.data != nullptr;
    for (int k = 0; k < Rule::kNumStates; ++k) ok = ok && t.states[k] != nullptr;
    TERSE_CHECK(ok, InvalidArgument, "cpu_multi_tensor_apply: tensor ", i, " (", t.param.numel,
                " elements) has a null param, grad or state pointer; allocate them first");
  }
}

}  // namespace cpu_multi_tensor_detail

template <typename Rule>
void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<Rule>>& tasks) {
  cpu_multi_tensor_detail::validate(tasks);
  // offsets[i] = first element of task i in the concatenation of all tasks.
  std::vector<int64_t> offsets(tasks.size() + 1, 0);
  for (size_t i = 0; i < tasks.size(); ++i) offsets[i + 1] = offsets[i] + tasks[i].param.numel;
  cpu_for_each_chunk_piece(offsets, cpu_threads(), [&](size_t i, int64_t begin, int64_t end) {
    cpu_multi_tensor_detail::run_segment(tasks[i], begin, end);
  });
}

}  // namespace terse

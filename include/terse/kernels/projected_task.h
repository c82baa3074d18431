#pragma once

#include <cstddef>
#include <cstdint>

#include "terse/core/check.h"
#include "terse/core/tensor_view.h"

namespace terse {

// Which view of a tensor an AdamP / SGDP step projected (ProjectionScalars in
// projection_scalars.h): none (ndim <= 1, or no view passed the cosine test), the channel view
// (rows = dim 0) or the layer view (the whole tensor).
enum class ProjectionView : uint8_t { kNone = 0, kChannel = 1, kLayer = 2 };

// One tensor of a projected step: the Rule (AdamPRule / SgdPRule: its element-wise update() /
// perturb() and its ProjectionScalars `proj`), the parameter (read and written), its gradient
// (read, same dtype and numel), the Rule's f32 states and `rows`: 0 for a tensor that is never
// projected (the official code's len(p.shape) <= 1), else shape[0] (numel a multiple of it).
// All in the memory of the executor that runs it (cpu_projected.h, cuda_projected.h).
template <typename Rule>
struct ProjectedTask {
  Rule rule;
  TensorView param;
  TensorView grad;
  float* states[Rule::kNumStates] = {};
  int64_t rows = 0;
};

// The checks both executors make of task i, the device aside; `who` names the executor.
template <typename Rule>
void check_projected_task(const ProjectedTask<Rule>& t, size_t i, const char* who) {
  TERSE_CHECK(
      t.param.dtype == DType::kF32 || t.param.dtype == DType::kBF16 || t.param.dtype == DType::kF16,
      InvalidArgument, who, ": tensor ", i, " has dtype ", dtype_name(t.param.dtype),
      "; parameters must be f32, bf16 or f16");
  TERSE_CHECK(t.grad.dtype == t.param.dtype && t.grad.numel == t.param.numel, InvalidArgument, who,
              ": tensor ", i, " has param ", t.param.str(), " but grad ", t.grad.str(),
              "; the gradient must match the parameter's dtype and numel");
  TERSE_CHECK(t.param.numel >= 0 && t.rows >= 0, InvalidArgument, who, ": tensor ", i,
              " has numel ", t.param.numel, " and rows ", t.rows, "; both must be >= 0");
  if (t.param.numel == 0) return;
  TERSE_CHECK(t.rows == 0 || t.param.numel % t.rows == 0, InvalidArgument, who, ": tensor ", i,
              " has ", t.param.numel, " elements in ", t.rows,
              " rows; rows must divide numel (rows = shape[0])");
  bool ok = t.param.data != nullptr && t.grad.data != nullptr;
  for (int k = 0; k < Rule::kNumStates; ++k) ok = ok && t.states[k] != nullptr;
  TERSE_CHECK(ok, InvalidArgument, who, ": tensor ", i, " (", t.param.numel,
              " elements) has a null param, grad or state pointer; allocate them first");
}

}  // namespace terse

#pragma once

#include <cstdint>
#include <vector>

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
template <typename Rule>
struct CpuProjectedTask {
  Rule rule;
  TensorView param;
  TensorView grad;
  float* states[Rule::kNumStates] = {};
  int64_t rows = 0;
};

// Runs one AdamP / SGDP step over every task and returns the view each projected. Tensors with
// rows = 0 take one fused pass (read theta, g, states; write theta, states). The others take
// two: the first advances the states and accumulates, per row in double, <g,theta>, |g|^2,
// |theta|^2 and <theta,perturb>; the host then picks the view; the second recomputes perturb
// from the advanced states and writes theta. Rows longer than a chunk (kCpuChunkElements) are
// split and shorter rows batched, so cpu_threads() OpenMP threads share any mix of shapes; the
// sums have a fixed order, so results do not depend on the thread count or the CPU's vector
// width. Params and grads may be f32, bf16 or f16 (math in f32). Throws InvalidArgument, before
// touching any data, on a non-CPU view, a non-floating dtype, a grad that differs from its
// param in dtype or numel, a null pointer with numel > 0, or rows that do not divide numel.
template <typename Rule>
std::vector<ProjectionView> cpu_projected_apply(const std::vector<CpuProjectedTask<Rule>>& tasks);

}  // namespace terse

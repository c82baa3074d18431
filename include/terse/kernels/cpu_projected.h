#pragma once

#include <cstdint>
#include <vector>

#include "terse/core/tensor_view.h"
#include "terse/kernels/projected_task.h"
#include "terse/kernels/projection_choice.h"

namespace terse {

// A task of the CPU executor: its views are in host memory (projected_task.h).
template <typename Rule>
using CpuProjectedTask = ProjectedTask<Rule>;

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
// row_sums, when given, receives each task's per-row sums, from which the view was picked
// (empty for tasks that are never projected), so tests can compare them with the GPU's.
template <typename Rule>
std::vector<ProjectionView> cpu_projected_apply(
    const std::vector<CpuProjectedTask<Rule>>& tasks,
    std::vector<std::vector<RowSums>>* row_sums = nullptr);

}  // namespace terse

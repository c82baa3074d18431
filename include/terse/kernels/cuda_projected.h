#pragma once

#include <vector>

#include "terse/kernels/adamp_rule.h"
#include "terse/kernels/projected_task.h"
#include "terse/kernels/projection_choice.h"
#include "terse/kernels/sgdp_rule.h"

namespace terse {

// A task of the CUDA executor: its views and states are in the memory of one CUDA device
// (projected_task.h).
template <typename Rule>
using CudaProjectedTask = ProjectedTask<Rule>;

// cpu_projected_apply (cpu_projected.h) on a GPU, with the CPU's bits: the same views, params
// and states. Many tensors per launch, f32, bf16 or f16 params and grads (f32 math, f32 states).
// Tensors with rows = 0 take one fused pass. The others take two: the first advances the states
// and sums, per row, <g,theta>, |g|^2, |theta|^2 and <theta,perturb> in double over the same
// pieces, lanes and order as the CPU (projection_choice.h; one thread per piece and lane, each
// adding its elements one after the other, the 8 lanes of a piece then added in the CPU's tree);
// the host adds each row's pieces in order and picks the view with the CPU's code (choose_view);
// the second pass recomputes perturb from the advanced states and writes theta. The kernels are
// built without FMA contraction and with IEEE division and square root, as the CPU loop is.
// Enqueued on the legacy default stream of the tasks' device; waits for the first pass (the
// view is a host decision) and returns with the second pass enqueued (call cuda_synchronize()
// before reading the params on the host). Throws InvalidArgument, before launching anything,
// on a view that is not on a CUDA device (all tasks on one), or on what cpu_projected_apply
// refuses (check_projected_task); CudaError when the runtime fails (or this build has no CUDA).
// row_sums, when given, receives each task's per-row sums as cpu_projected_apply's does.
template <typename Rule>
std::vector<ProjectionView> cuda_projected_apply(
    const std::vector<CudaProjectedTask<Rule>>& tasks,
    std::vector<std::vector<RowSums>>* row_sums = nullptr);

// clang-format off (one Rule per line, as in cuda_multi_tensor.h)
#define TERSE_CUDA_PROJECTED_RULES(X) \
  X(AdamPRule<false>)                 \
  X(AdamPRule<true>)                  \
  X(SgdPRule<false>)                  \
  X(SgdPRule<true>)
// clang-format on
#define TERSE_CUDA_PROJECTED_EXTERN(R)                              \
  extern template std::vector<ProjectionView> cuda_projected_apply( \
      const std::vector<CudaProjectedTask<R>>&, std::vector<std::vector<RowSums>>*);
TERSE_CUDA_PROJECTED_RULES(TERSE_CUDA_PROJECTED_EXTERN)
#undef TERSE_CUDA_PROJECTED_EXTERN

}  // namespace terse

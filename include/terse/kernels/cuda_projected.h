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
// Tensors with rows = 0 take one fused pass. The others take two, with the view picked on the
// GPU between them (no host round trip): the first advances the states and sums, per row,
// <g,theta>, |g|^2, |theta|^2 and <theta,perturb> in double over the same pieces, lanes and
// order as the CPU (projection_choice.h; one thread per piece and lane, each adding its elements
// one after the other, the 8 lanes of a piece then added in the CPU's tree); a kernel then adds
// each row's pieces, tests the rows, adds the layer's sums in projection_layer_sum's fixed order
// and picks the view with choose_view's functions; the second pass reads the view, recomputes
// perturb from the advanced states and writes theta. The kernels are built without FMA
// contraction and with IEEE division and square root, as the CPU loop is.
// Enqueued on the legacy default stream of the tasks' device; returns with everything enqueued
// and no wait (call cuda_synchronize() before reading the params on the host). views and
// row_sums, when given, receive what cpu_projected_apply returns and fills (the view of each
// task, kNone where never projected, and its per-row sums), and layer_sums the layer's sums the
// GPU took (projection_layer_sum of the rows; taken for every projected task, zero for the
// others); the call then waits for the step to read them back (for tests and diagnostics).
// Throws InvalidArgument, before launching anything, on a view that is not on a CUDA device
// (all tasks on one), or on what cpu_projected_apply refuses (check_projected_task); CudaError
// when the runtime fails (or this build has no CUDA).
template <typename Rule>
void cuda_projected_apply(const std::vector<CudaProjectedTask<Rule>>& tasks,
                          std::vector<ProjectionView>* views = nullptr,
                          std::vector<std::vector<RowSums>>* row_sums = nullptr,
                          std::vector<RowSums>* layer_sums = nullptr);

// clang-format off (one Rule per line, as in cuda_multi_tensor.h)
#define TERSE_CUDA_PROJECTED_RULES(X) \
  X(AdamPRule<false>)                 \
  X(AdamPRule<true>)                  \
  X(SgdPRule<false>)                  \
  X(SgdPRule<true>)
// clang-format on
#define TERSE_CUDA_PROJECTED_EXTERN(R)                                        \
  extern template void cuda_projected_apply(                                  \
      const std::vector<CudaProjectedTask<R>>&, std::vector<ProjectionView>*, \
      std::vector<std::vector<RowSums>>*, std::vector<RowSums>*);
TERSE_CUDA_PROJECTED_RULES(TERSE_CUDA_PROJECTED_EXTERN)
#undef TERSE_CUDA_PROJECTED_EXTERN

}  // namespace terse

#pragma once

#include <cstddef>
#include <vector>

#include "terse/core/tensor_view.h"
#include "terse/kernels/adam_rule.h"
#include "terse/kernels/cpu_chunks.h"
#include "terse/kernels/sgd_rule.h"
#include "terse/kernels/tensor_task.h"

namespace terse {

// A task of the CPU executor: its views are in host memory (tensor_task.h).
template <typename Rule>
using CpuTensorTask = TensorTask<Rule>;

// Runs rule(p, g, s) over every element of every task in one fused pass per element: param,
// grad and states are read once and param and states written once. The elements of all tasks
// are cut into fixed chunks of kCpuChunkElements (a chunk may span several small tensors), which
// cpu_threads() OpenMP threads take dynamically, so big and small tensors balance. Results do
// not depend on the thread count: chunk bounds are fixed and every element is independent.
// Params and grads may be f32, bf16 or f16 (math in f32). Throws InvalidArgument, before
// touching any data, on a non-CPU view, a non-floating dtype, a grad whose dtype or numel
// differs from its param, or a null pointer with numel > 0.
template <typename Rule>
void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<Rule>>& tasks);

extern template void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<SgdRule<false>>>&);
extern template void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<SgdRule<true>>>&);
extern template void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<AdamRule<false>>>&);
extern template void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<AdamRule<true>>>&);

}  // namespace terse

#pragma once

// The param-state passes: rule(p, s) over every element of several tensors, each a parameter p
// (f32, bf16 or f16, math in f32) with one f32 state array s of its size and no gradient, for
// what keeps a copy of the weights beside the optimizer: Lookahead's slow weights
// (lookahead_sync_rule.h) and the parameter EMA (ema_rule.h, store_state_rule.h). One Rule,
// one host and one device executor, as for the optimizers' Rules (cpu_multi_tensor.h,
// cuda_multi_tensor.h), so both give the same bits. A Rule has
//   template <typename T> TERSE_HD void operator()(T& p, float& s) const;
// and says which of p and s it reads and writes (kReadsParam, kWritesParam, kReadsState,
// kWritesState), so the GPU pass moves only those bytes.

#include <cstdint>
#include <vector>

#include "terse/core/check.h"
#include "terse/core/device.h"
#include "terse/core/dispatch.h"
#include "terse/core/dtype.h"
#include "terse/core/tensor_view.h"
#include "terse/kernels/cpu_chunks.h"
#include "terse/kernels/cpu_threads.h"
#include "terse/kernels/ema_rule.h"
#include "terse/kernels/lookahead_sync_rule.h"
#include "terse/kernels/store_state_rule.h"

namespace terse {

struct ParamStateTask {
  TensorView param;
  float* state = nullptr;  // param.numel f32 values, in the memory of param's device
};

// The device of every task (CPU for none). Throws InvalidArgument, naming `fn`, on tasks on
// several devices, a dtype other than f32, bf16 or f16, a negative numel, or a null pointer
// with numel > 0.
inline Device param_state_device(const std::vector<ParamStateTask>& tasks, const char* fn) {
  Device device = tasks.empty() ? Device::cpu() : tasks[0].param.device;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const TensorView& p = tasks[i].param;
    TERSE_CHECK(p.device == device, InvalidArgument, fn, ": tensor ", i, " is on ", p.device.str(),
                " but tensor 0 on ", device.str(), "; one call takes the tensors of one device");
    TERSE_CHECK(p.dtype == DType::kF32 || p.dtype == DType::kBF16 || p.dtype == DType::kF16,
                InvalidArgument, fn, ": tensor ", i, " has dtype ", dtype_name(p.dtype),
                "; parameters must be f32, bf16 or f16");
    TERSE_CHECK(p.numel >= 0, InvalidArgument, fn, ": tensor ", i, " has numel ", p.numel);
    TERSE_CHECK(p.numel == 0 || (p.data != nullptr && tasks[i].state != nullptr), InvalidArgument,
                fn, ": tensor ", i, " (", p.numel,
                " elements) has a null parameter or state pointer");
  }
  return device;
}

// The host executor: the tasks' elements in the fixed chunks of cpu_for_each_chunk_piece over
// cpu_threads() threads (every element is independent, so the thread count changes nothing).
template <typename Rule>
void cpu_param_state_apply(const Rule& rule, const std::vector<ParamStateTask>& tasks) {
  const Device device = param_state_device(tasks, "cpu_param_state_apply");
  TERSE_CHECK(device.is_cpu(), InvalidArgument, "cpu_param_state_apply: the tensors are on ",
              device.str(), "; use cuda_param_state_apply for device tensors");
  std::vector<int64_t> offsets{0};
  for (const ParamStateTask& t : tasks) offsets.push_back(offsets.back() + t.param.numel);
  cpu_for_each_chunk_piece(offsets, cpu_threads(), [&](size_t i, int64_t b, int64_t e) {
    float* s = tasks[i].state;
    dispatch_floating(tasks[i].param.dtype, [&](auto tag) {
      using T = decltype(tag);
      T* p = static_cast<T*>(tasks[i].param.data);
      const Rule r = rule;
#pragma omp simd
      for (int64_t j = b; j < e; ++j) r(p[j], s[j]);
    });
  });
}

// The device executor: every tensor in chunks of kCudaChunkElements, one thread block each, all
// tensors of one dtype in one launch, on the legacy default stream of the tensors' GPU (ordered
// after the optimizer's step and libtorch's kernels there); returns without waiting. Built
// without FMA contraction, so it gives cpu_param_state_apply's bits. Throws as
// param_state_device, InvalidArgument for tensors that are not on a CUDA device, and CudaError
// when the runtime refuses the upload or the launch (or the build has no CUDA).
template <typename Rule>
void cuda_param_state_apply(const Rule& rule, const std::vector<ParamStateTask>& tasks);

// The executor of the tasks' device.
template <typename Rule>
void param_state_apply(const Rule& rule, const std::vector<ParamStateTask>& tasks) {
  if (param_state_device(tasks, "param_state_apply").is_cuda()) {
    cuda_param_state_apply(rule, tasks);
  } else {
    cpu_param_state_apply(rule, tasks);
  }
}

#define TERSE_PARAM_STATE_RULES(X) \
  X(EmaRule)                       \
  X(LookaheadSyncRule)             \
  X(StoreStateRule)
#define TERSE_PARAM_STATE_EXTERN(R) \
  extern template void cuda_param_state_apply(const R&, const std::vector<ParamStateTask>&);
TERSE_PARAM_STATE_RULES(TERSE_PARAM_STATE_EXTERN)
#undef TERSE_PARAM_STATE_EXTERN

}  // namespace terse

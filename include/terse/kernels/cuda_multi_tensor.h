#pragma once

#include <cstddef>
#include <type_traits>
#include <vector>

#include "terse/core/dtype.h"
#include "terse/kernels/adabelief_rule.h"
#include "terse/kernels/adam_rule.h"
#include "terse/kernels/adan_rule.h"
#include "terse/kernels/auon_rule.h"
#include "terse/kernels/diffgrad_rule.h"
#include "terse/kernels/exadam_rule.h"
#include "terse/kernels/frugal_adam_rule.h"
#include "terse/kernels/frugal_inactive_rule.h"
#include "terse/kernels/lerp_momentum_rule.h"
#include "terse/kernels/lion_rule.h"
#include "terse/kernels/muon_adam_rule.h"
#include "terse/kernels/muon_update_rule.h"
#include "terse/kernels/one_bit_adam_rules.h"
#include "terse/kernels/one_bit_lamb_rules.h"
#include "terse/kernels/sgd_rule.h"
#include "terse/kernels/sgd_sai_rule.h"
#include "terse/kernels/spam_rule.h"
#include "terse/kernels/tensor_task.h"
#include "terse/kernels/zero_one_adam_rules.h"

namespace terse {

// A task of the CUDA executor: its views are in the memory of one CUDA device (tensor_task.h).
template <typename Rule>
using CudaTensorTask = TensorTask<Rule>;

// The CUDA executor of the element-wise Rules (the same functors as cpu_multi_tensor_apply, so
// one formula serves both): rule(p, g, s) over every element of every task, f32 math on f32,
// bf16 or f16 params and grads, states f32. Many tensors per launch (multi-tensor apply): every
// tensor is cut into chunks of kCudaChunkElements, one thread block per chunk, found through a
// table uploaded with the launch, so one launch per param dtype present covers any number of
// tensors. Bit-identical to the CPU executor: the kernels are built without FMA contraction
// (-fmad=false) and with IEEE division and square root, as the CPU loop is.
// Enqueued on the legacy default stream of the tasks' device; returns without waiting (call
// cuda_synchronize() before reading results on the host). Throws InvalidArgument, before
// launching anything, on a view that is not on a CUDA device (all tasks on one device), a
// non-floating dtype, a grad whose dtype, numel or device differs from its param, or a null
// pointer with numel > 0; CudaError when the runtime refuses the upload or the launch.
template <typename Rule>
void cuda_multi_tensor_apply(const std::vector<CudaTensorTask<Rule>>& tasks);

constexpr int64_t kCudaChunkElements = 65536;

// Waits for everything enqueued on the current device (CudaError on an asynchronous failure).
void cuda_synchronize();

// clang-format off (one Rule per line; clang-format 14 does not settle on a layout for it)
#define TERSE_CUDA_MTA_RULES(X) \
  X(SgdRule<false>)             \
  X(SgdRule<true>)              \
  X(SgdSaiRule<false>)          \
  X(SgdSaiRule<true>)           \
  X(AdamRule<false>)            \
  X(AdamRule<true>)             \
  X(LionRule)                   \
  X(AdanRule)                   \
  X(AdaBeliefRule<false>)       \
  X(AdaBeliefRule<true>)        \
  X(DiffGradRule)               \
  X(ExAdamRule)                 \
  X(SpamRule)                   \
  X(LerpMomentumRule)           \
  X(MuonUpdateRule)             \
  X(MuonAdamRule)               \
  X(AuonUpdateRule)             \
  X(FrugalAdamRule)             \
  X(FrugalInactiveRule)         \
  X(OneBitMomentumRule)         \
  X(OneBitAdamUpdateRule)       \
  X(ZeroOneVarianceRule)        \
  X(ZeroOneMomentumRule<true>)  \
  X(ZeroOneMomentumRule<false>) \
  X(ZeroOneSyncSendRule)        \
  X(ZeroOneSyncApplyRule)       \
  X(OneBitLambWarmupRule)       \
  X(OneBitLambUpdateRule)       \
  X(OneBitLambMomentumRule)     \
  X(OneBitLambFreshRule)        \
  X(OneBitLambPrelimRule)
// clang-format on
#define TERSE_CUDA_MTA_EXTERN(R) \
  extern template void cuda_multi_tensor_apply(const std::vector<CudaTensorTask<R>>&);
TERSE_CUDA_MTA_RULES(TERSE_CUDA_MTA_EXTERN)
#undef TERSE_CUDA_MTA_EXTERN

// Whether cuda_multi_tensor_apply is instantiated for Rule (the list above).
template <typename Rule>
struct HasCudaExecutor : std::false_type {};
#define TERSE_CUDA_MTA_TRAIT(R) \
  template <>                   \
  struct HasCudaExecutor<R> : std::true_type {};
TERSE_CUDA_MTA_RULES(TERSE_CUDA_MTA_TRAIT)
#undef TERSE_CUDA_MTA_TRAIT

// A range [begin, end) of a floating-point array in GPU memory (a piece of one chunk of the
// fixed chunking that the CPU's global gradient norm uses).
struct CudaSumPiece {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t begin = 0;
  int64_t end = 0;
};

// Per piece, the sum of x^2 in double, in the CPU's order (FusedOptimizerBase's sum_squares:
// 8 lanes, element i into lane (i - begin) % 8, lanes summed 0 to 7), so a norm built from these
// sums in the same order as on the CPU has the same bits. Waits for the result.
std::vector<double> cuda_piece_sum_squares(int device, const std::vector<CudaSumPiece>& pieces);

// Device memory for optimizer state. A build without CUDA throws CudaError from each (and from
// cuda_multi_tensor_apply and cuda_synchronize), saying so.
// Zero-filled `bytes` on device `device`; CudaError when the runtime cannot allocate them.
void* cuda_alloc_zeroed(int device, size_t bytes);
// Frees what cuda_alloc_zeroed returned (nullptr: nothing); never throws.
void cuda_free(void* ptr) noexcept;
// Copies `bytes` between host and device memory in either direction, after the work already
// enqueued on the default stream, and returns when the copy is done.
void cuda_copy(void* dst, const void* src, size_t bytes);

}  // namespace terse

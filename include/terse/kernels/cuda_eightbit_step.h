#pragma once

// The CUDA step of the bitsandbytes-style 8-bit optimizers (adam8bit, adamw8bit, momentum8bit,
// lion8bit; spec optimizers.md §10): the GPU form of eightbit_block_step / f32_state_step
// (eightbit_block_step.h), with the same bits.

#include <cstdint>
#include <vector>

#include "terse/core/tensor_view.h"
#include "terse/kernels/bnb_adam_rule.h"
#include "terse/kernels/lion_rule.h"
#include "terse/kernels/quant_code.h"
#include "terse/kernels/sgd_rule.h"

namespace terse {

// One state's quantization map as the kernel reads it (DynamicMap: codes(), search_tree(),
// sorted_midpoints(), bucket_base() padded to whole words, is_signed(), zero_code()).
struct CudaQuantMap {
  static constexpr uint32_t kBaseBytes = (2 * kQuantBucketsPerSign + 3) / 4 * 4;
  float code[256];
  float tree[256];
  float mid[256];
  uint8_t base[kBaseBytes];
  uint32_t is_signed;
  uint32_t zero_code;
};
// The maps of states 0 and 1 (bnb: signed for the first, unsigned for Adam's second).
struct CudaQuantMaps {
  CudaQuantMap state[2];
};

class DynamicMap;
// `map` as the kernel reads it (src/kernels/cuda_quant_map.cc).
CudaQuantMap cuda_quant_map(const DynamicMap& map);

// One tensor of a step; every pointer is in the memory of the tensor's GPU. An 8-bit tensor has
// per state k < Rule::kNumStates numel codes (codes[k]) and quant_num_blocks(numel) absmax
// (absmax[k]) in blocks of kQuantBlockSize; any other has numel f32 states (values[k]).
template <typename Rule>
struct CudaEightBitTask {
  Rule rule;
  TensorView param;
  TensorView grad;
  bool eight_bit = false;
  uint8_t* codes[2] = {nullptr, nullptr};
  float* absmax[2] = {nullptr, nullptr};
  float* values[2] = {nullptr, nullptr};
};

// Every element of every task, in one launch: a thread block takes a chunk of up to 128
// quantization blocks of one tensor, each warp one block of 256 elements at a time: dequantize
// (map value * absmax), eightbit_update (eightbit_element.h) in f32, the block's new absmax by a
// warp max of abs_bits (quant_code.h), then the code of s * (1 / absmax) by bucket_map_code
// (dynamic_map_code's result) from tables in shared memory; params (f32, bf16 or f16) and states
// are written in place. Where the device allows (sm_80 on), a warp's blocks stream through a
// cp.async pipeline in shared memory; TERSE_CUDA_EIGHTBIT_PLAIN=1 turns it off (same results).
// Tensors with f32 states run f32_state_update in the same launch. maps.state[k] is state k's.
// Enqueued on the legacy default stream of the tasks' device; returns without waiting.
// Throws InvalidArgument, before launching anything, on a view that is not on a CUDA device
// (all tasks on one device), a non-floating dtype, a grad whose dtype, numel or device differs
// from its param, or a null pointer where numel > 0; CudaError when the runtime refuses the
// upload or the launch (and in a build without CUDA).
template <typename Rule, bool kSkipNonFiniteGrad>
void cuda_eightbit_step(const std::vector<CudaEightBitTask<Rule>>& tasks,
                        const CudaQuantMaps& maps);

// The (Rule, kSkipNonFiniteGrad) pairs of the 8-bit optimizers (src/optim/eightbit/).
#define TERSE_CUDA_EIGHTBIT_RULES(X) \
  X(BnbAdamRule, true)               \
  X(SgdRule<true>, false)            \
  X(LionRule, false)
#define TERSE_CUDA_EIGHTBIT_EXTERN(R, S)                                                 \
  extern template void cuda_eightbit_step<R, S>(const std::vector<CudaEightBitTask<R>>&, \
                                                const CudaQuantMaps&);
TERSE_CUDA_EIGHTBIT_RULES(TERSE_CUDA_EIGHTBIT_EXTERN)
#undef TERSE_CUDA_EIGHTBIT_EXTERN

}  // namespace terse

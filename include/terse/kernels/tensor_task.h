#pragma once

#include "terse/core/tensor_view.h"

namespace terse {

// One tensor of a multi-tensor step: the parameter (read and written), its gradient (read, same
// dtype and numel) and the Rule's f32 state buffers (Rule::kNumStates <= 4 of them, numel each,
// read and written), all in the memory of the executor that runs it (host memory for
// cpu_multi_tensor_apply, one GPU's for cuda_multi_tensor_apply). The rule is per tensor so
// tensors of one call may carry different scalars (groups, per-tensor steps).
template <typename Rule>
struct TensorTask {
  Rule rule;
  TensorView param;
  TensorView grad;
  float* states[Rule::kNumStates > 0 ? Rule::kNumStates : 1] = {};
};

}  // namespace terse

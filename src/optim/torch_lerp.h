#pragma once

#include "terse/kernels/torch_lerp.h"

namespace terse::optim_detail {

// The kernels' torch.lerp (terse/kernels/torch_lerp.h), shared with the CUDA Rules.
using terse::torch_lerp;

}  // namespace terse::optim_detail

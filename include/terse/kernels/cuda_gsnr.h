#pragma once

#include <vector>

#include "terse/core/tensor_view.h"
#include "terse/kernels/gsnr.h"

namespace terse {

// gsnr_sums (gsnr.h) of each of `grads`, f32, bf16 or f16 arrays in the memory of one CUDA
// device, with the CPU's bits: the sums are sequential (the signed sum of g_i leaves no room for
// the reordering a parallel reduction would do), so one thread walks each tensor while the
// others of its block stage the next tile of it; tensors run in parallel, one block each, so
// the time is two serial walks over the largest tensor (SGD-SaI needs the sums once per tensor,
// at the first step). Enqueued on the legacy default stream after the work already there;
// returns when the sums are on the host. Throws InvalidArgument, before launching anything, on
// a view that is not on a CUDA device (all on one), a dtype other than f32, bf16 or f16, or a
// null pointer with numel > 0; CudaError when the runtime fails (or this build has no CUDA).
std::vector<GsnrSums> cuda_gsnr_sums(const std::vector<TensorView>& grads);

}  // namespace terse

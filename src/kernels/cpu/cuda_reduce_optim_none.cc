// The CUDA entry points of the optimizers whose step needs reductions (SGD-SaI's g-SNR,
// AdamP / SGDP's projected step) for builds without CUDA (TERSE_HAVE_CUDA off): they say that
// this build has none.
#include <vector>

#include "no_cuda.h"
#include "terse/core/check.h"
#include "terse/kernels/cuda_gsnr.h"
#include "terse/kernels/cuda_projected.h"

namespace terse {

using kernels_detail::no_cuda;

std::vector<GsnrSums> cuda_gsnr_sums(const std::vector<TensorView>& /*grads*/) {
  no_cuda("cuda_gsnr_sums");
}

template <typename Rule>
void cuda_projected_apply(const std::vector<CudaProjectedTask<Rule>>& /*tasks*/,
                          std::vector<ProjectionView>* /*views*/,
                          std::vector<std::vector<RowSums>>* /*row_sums*/,
                          std::vector<RowSums>* /*layer_sums*/) {
  no_cuda("cuda_projected_apply");
}
#define TERSE_CUDA_PROJECTED_STUB(R)                                           \
  template void cuda_projected_apply(const std::vector<CudaProjectedTask<R>>&, \
                                     std::vector<ProjectionView>*,             \
                                     std::vector<std::vector<RowSums>>*, std::vector<RowSums>*);
TERSE_CUDA_PROJECTED_RULES(TERSE_CUDA_PROJECTED_STUB)
#undef TERSE_CUDA_PROJECTED_STUB

}  // namespace terse

// cuda_eightbit_step for builds without CUDA (TERSE_HAVE_CUDA off): it says that this build has
// none (the 8-bit optimizers call it only for parameters on a CUDA device).
#include <vector>

#include "no_cuda.h"
#include "terse/kernels/cuda_eightbit_step.h"

namespace terse {

template <typename Rule, bool kSkipNonFiniteGrad>
void cuda_eightbit_step(const std::vector<CudaEightBitTask<Rule>>& /*tasks*/,
                        const CudaQuantMaps& /*maps*/) {
  kernels_detail::no_cuda("cuda_eightbit_step");
}

#define TERSE_CUDA_EIGHTBIT_STUB(R, S)                                            \
  template void cuda_eightbit_step<R, S>(const std::vector<CudaEightBitTask<R>>&, \
                                         const CudaQuantMaps&);
TERSE_CUDA_EIGHTBIT_RULES(TERSE_CUDA_EIGHTBIT_STUB)
#undef TERSE_CUDA_EIGHTBIT_STUB

}  // namespace terse

// cuda_param_state_apply (terse/kernels/param_state_apply.h) for builds without CUDA
// (TERSE_HAVE_CUDA off): it says that this build has none.
#include <vector>

#include "no_cuda.h"
#include "terse/kernels/param_state_apply.h"

namespace terse {

template <typename Rule>
void cuda_param_state_apply(const Rule& /*rule*/, const std::vector<ParamStateTask>& /*tasks*/) {
  kernels_detail::no_cuda("cuda_param_state_apply");
}
#define TERSE_PARAM_STATE_STUB(R) \
  template void cuda_param_state_apply(const R&, const std::vector<ParamStateTask>&);
TERSE_PARAM_STATE_RULES(TERSE_PARAM_STATE_STUB)
#undef TERSE_PARAM_STATE_STUB

}  // namespace terse

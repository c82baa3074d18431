// The CPU multi-tensor loop for the Rules of terse_kernels' own users (sgd, adam, adamw,
// 1-bit Adam); the loop itself is in cpu_multi_tensor_impl.h.
#include "terse/kernels/cpu_multi_tensor_impl.h"

namespace terse {

template void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<SgdRule<false>>>&);
template void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<SgdRule<true>>>&);
template void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<AdamRule<false>>>&);
template void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<AdamRule<true>>>&);

}  // namespace terse

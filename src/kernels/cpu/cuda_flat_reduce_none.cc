// The per-tensor GPU reductions (terse/kernels/cuda_flat_reduce.h) for builds without CUDA: each
// says that this build has none.
#include "no_cuda.h"
#include "terse/core/check.h"
#include "terse/kernels/cuda_flat_reduce.h"

namespace terse {

using kernels_detail::no_cuda;

std::vector<double> cuda_fixed_sums(int, const std::vector<CudaF32Range>&, fixed_sum::Term) {
  no_cuda("cuda_fixed_sums");
}
std::vector<float> cuda_positive_max(int, const std::vector<CudaF32Range>&) {
  no_cuda("cuda_positive_max");
}

}  // namespace terse

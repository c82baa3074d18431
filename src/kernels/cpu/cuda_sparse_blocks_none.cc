// The sparse collectives' GPU passes (terse/kernels/cuda_sparse_blocks.h) for builds without
// CUDA: each says that this build has none.
#include "no_cuda.h"
#include "terse/kernels/cuda_sparse_blocks.h"

namespace terse {

using kernels_detail::no_cuda;

std::vector<int64_t> cuda_first_bad_indices(int /*device*/, const int32_t* /*idx*/,
                                            const std::vector<int64_t>& /*offsets*/, int64_t /*lo*/,
                                            int64_t /*hi*/) {
  no_cuda("cuda_first_bad_indices");
}
std::vector<int64_t> cuda_first_bad_indices_in(int /*device*/, const int32_t* /*idx*/,
                                               const std::vector<int64_t>& /*offsets*/,
                                               const std::vector<int64_t>& /*lo*/,
                                               const std::vector<int64_t>& /*hi*/) {
  no_cuda("cuda_first_bad_indices_in");
}
void cuda_sparse_add_blocks(int /*device*/, const int32_t* /*idx*/, const float* /*val*/,
                            const std::vector<int64_t>& /*offsets*/, float* /*out*/) {
  no_cuda("cuda_sparse_add_blocks");
}
void cuda_sparse_set(int /*device*/, const int32_t* /*idx*/, const float* /*val*/,
                     int64_t /*count*/, float* /*out*/) {
  no_cuda("cuda_sparse_set");
}
void cuda_sparse_wait(int /*device*/) { no_cuda("cuda_sparse_wait"); }

}  // namespace terse

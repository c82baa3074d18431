// SparseAllReduce's selection passes (terse/kernels/cuda_sparse_select.h) for builds without
// CUDA: each says that this build has none.
#include "no_cuda.h"
#include "terse/kernels/cuda_sparse_select.h"

namespace terse {

using kernels_detail::no_cuda;

std::vector<int64_t> cuda_lower_bounds(int /*device*/, const int32_t* /*idx*/, int64_t /*count*/,
                                       const std::vector<int64_t>& /*bounds*/) {
  no_cuda("cuda_lower_bounds");
}
int64_t cuda_first_non_finite(int /*device*/, const float* /*val*/, int64_t /*count*/) {
  no_cuda("cuda_first_non_finite");
}
void cuda_range_add_spans(int /*device*/, const int32_t* /*idx*/, const float* /*val*/,
                          const std::vector<CudaSpan>& /*spans*/, int64_t /*lo*/, float* /*sums*/,
                          int32_t* /*touched*/) {
  no_cuda("cuda_range_add_spans");
}
int64_t cuda_touched_pairs(int /*device*/, const int32_t* /*touched*/, const float* /*sums*/,
                           int64_t /*range*/, int64_t /*lo*/, int32_t* /*out_idx*/,
                           float* /*out_val*/) {
  no_cuda("cuda_touched_pairs");
}
int64_t cuda_keep_largest(int /*device*/, const int32_t* /*idx*/, const float* /*val*/,
                          int64_t /*count*/, int64_t /*q*/, int32_t* /*out_idx*/,
                          float* /*out_val*/, int32_t* /*flags*/) {
  no_cuda("cuda_keep_largest");
}
void cuda_fill_i32(int /*device*/, int32_t* /*p*/, int64_t /*count*/, int32_t /*value*/) {
  no_cuda("cuda_fill_i32");
}
std::vector<CudaPaddedBlock> cuda_check_padded_blocks(int /*device*/, const int32_t* /*idx*/,
                                                      const float* /*val*/,
                                                      const std::vector<int64_t>& /*offsets*/,
                                                      const std::vector<int64_t>& /*lo*/,
                                                      const std::vector<int64_t>& /*hi*/,
                                                      int32_t /*pad*/) {
  no_cuda("cuda_check_padded_blocks");
}
int64_t cuda_drop_padding(int /*device*/, const int32_t* /*idx*/, const float* /*val*/,
                          int64_t /*count*/, int32_t /*pad*/, int32_t* /*out_idx*/,
                          float* /*out_val*/) {
  no_cuda("cuda_drop_padding");
}
void cuda_kept_flags(int /*device*/, const int32_t* /*idx*/, int64_t /*count*/,
                     const int32_t* /*sent*/, const int32_t* /*selected*/, int64_t /*s*/,
                     uint8_t* /*kept_host*/) {
  no_cuda("cuda_kept_flags");
}
std::vector<int64_t> cuda_indices_at(int /*device*/, const int32_t* /*idx*/,
                                     const std::vector<int64_t>& /*positions*/) {
  no_cuda("cuda_indices_at");
}

}  // namespace terse

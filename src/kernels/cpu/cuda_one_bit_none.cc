// OneBitAllReduce's GPU passes (terse/kernels/cuda_one_bit_all_reduce.h) for builds without CUDA:
// each says that this build has none.
#include "no_cuda.h"
#include "terse/core/check.h"
#include "terse/kernels/cuda_one_bit_all_reduce.h"

namespace terse {

using kernels_detail::no_cuda;

void cuda_one_bit_worker_pass(int, const float*, int64_t, const float*, int64_t, uint8_t*,
                              double*) {
  no_cuda("cuda_one_bit_worker_pass");
}
void cuda_one_bit_worker_error(int, const float*, int64_t, float*, int64_t, uint32_t) {
  no_cuda("cuda_one_bit_worker_error");
}
void cuda_one_bit_server_pass(int, const uint8_t*, const float*, int, const float*, int64_t, float*,
                              uint8_t*, double*) {
  no_cuda("cuda_one_bit_server_pass");
}
void cuda_one_bit_server_error(int, const float*, float*, int64_t, uint32_t) {
  no_cuda("cuda_one_bit_server_error");
}
void cuda_one_bit_decode(int, const uint8_t*, const float*, int64_t, float*, int64_t, float*,
                         int64_t, uint32_t) {
  no_cuda("cuda_one_bit_decode");
}

}  // namespace terse

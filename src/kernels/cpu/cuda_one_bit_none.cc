// OneBitAllReduce's GPU passes (terse/kernels/cuda_one_bit_all_reduce.h) for builds without CUDA:
// each says that this build has none.
#include "terse/core/check.h"
#include "terse/kernels/cuda_one_bit_all_reduce.h"

namespace terse {

namespace {
[[noreturn]] void no_cuda(const char* what) {
  TERSE_THROW(CudaError, what, ": this build of terse has no CUDA support (nvcc was not found or ",
              "TERSE_CUDA=OFF); rebuild with nvcc on the PATH, or pass CPU tensors");
}
}  // namespace

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

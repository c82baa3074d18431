// CudaInfo for builds without CUDA (TERSE_HAVE_CUDA off): no devices, and the reason; the CUDA
// executor's entry points, which say that this build has none.
#include <vector>

#include "no_cuda.h"
#include "terse/core/check.h"
#include "terse/kernels/cuda_buffer.h"
#include "terse/kernels/cuda_cast_codec.h"
#include "terse/kernels/cuda_info.h"
#include "terse/kernels/cuda_multi_tensor.h"
#include "terse/kernels/cuda_quant_codec.h"
#include "terse/kernels/cuda_rand_k.h"
#include "terse/kernels/cuda_scatter_add.h"
#include "terse/kernels/cuda_sign_codec.h"

namespace terse {

using kernels_detail::no_cuda;

template <typename Rule>
void cuda_multi_tensor_apply(const std::vector<CudaTensorTask<Rule>>& /*tasks*/) {
  no_cuda("cuda_multi_tensor_apply");
}
#define TERSE_CUDA_MTA_STUB(R) \
  template void cuda_multi_tensor_apply(const std::vector<CudaTensorTask<R>>&);
TERSE_CUDA_MTA_RULES(TERSE_CUDA_MTA_STUB)
#undef TERSE_CUDA_MTA_STUB

void cuda_synchronize() { no_cuda("cuda_synchronize"); }
std::vector<double> cuda_piece_sum_squares(int /*device*/,
                                           const std::vector<CudaSumPiece>& /*pieces*/) {
  no_cuda("cuda_piece_sum_squares");
}
void* cuda_alloc_zeroed(int /*device*/, size_t /*bytes*/) { no_cuda("cuda_alloc_zeroed"); }
void cuda_free(void* /*ptr*/) noexcept {}
void cuda_copy(void* /*dst*/, const void* /*src*/, size_t /*bytes*/) { no_cuda("cuda_copy"); }
void cuda_zero(void* /*ptr*/, size_t /*bytes*/) { no_cuda("cuda_zero"); }
void cuda_divide(const TensorView& /*x*/, float /*divisor*/) { no_cuda("cuda_divide"); }
void cuda_multiply(const TensorView& /*x*/, float /*factor*/) { no_cuda("cuda_multiply"); }
bool cuda_all_finite(const TensorView& /*x*/) { no_cuda("cuda_all_finite"); }

size_t cuda_onebit_body_bytes(int64_t /*n*/) { no_cuda("cuda_onebit_body_bytes"); }
size_t cuda_onebit_encode(const float* /*x*/, int64_t /*n*/, uint8_t* /*body*/,
                          size_t /*body_cap*/) {
  no_cuda("cuda_onebit_encode");
}
void cuda_onebit_decode(const uint8_t* /*body*/, size_t /*body_bytes*/, float* /*out*/,
                        int64_t /*n*/, bool /*accumulate*/) {
  no_cuda("cuda_onebit_decode");
}
size_t cuda_scaled_sign_body_bytes(int64_t /*n*/) { no_cuda("cuda_scaled_sign_body_bytes"); }
size_t cuda_scaled_sign_encode(const float* /*x*/, int64_t /*n*/, uint8_t* /*body*/,
                               size_t /*body_cap*/) {
  no_cuda("cuda_scaled_sign_encode");
}
void cuda_scaled_sign_decode(const uint8_t* /*body*/, size_t /*body_bytes*/, float* /*out*/,
                             int64_t /*n*/, bool /*accumulate*/) {
  no_cuda("cuda_scaled_sign_decode");
}

size_t cuda_qsgd_body_bytes(int64_t /*n*/, uint32_t /*levels*/) { no_cuda("cuda_qsgd_body_bytes"); }
size_t cuda_qsgd_encode(const float* /*x*/, int64_t /*n*/, uint32_t /*levels*/,
                        uint64_t /*seed_step*/, uint8_t* /*body*/, size_t /*body_cap*/) {
  no_cuda("cuda_qsgd_encode");
}
void cuda_qsgd_decode(const uint8_t* /*body*/, size_t /*body_bytes*/, uint32_t /*levels*/,
                      float* /*out*/, int64_t /*n*/, bool /*accumulate*/) {
  no_cuda("cuda_qsgd_decode");
}
size_t cuda_terngrad_body_bytes(int64_t /*n*/) { no_cuda("cuda_terngrad_body_bytes"); }
size_t cuda_terngrad_encode(const float* /*x*/, int64_t /*n*/, uint64_t /*seed_step*/,
                            uint8_t* /*body*/, size_t /*body_cap*/) {
  no_cuda("cuda_terngrad_encode");
}
void cuda_terngrad_decode(const uint8_t* /*body*/, size_t /*body_bytes*/, float* /*out*/,
                          int64_t /*n*/, bool /*accumulate*/) {
  no_cuda("cuda_terngrad_decode");
}

size_t cuda_cast_body_bytes(int64_t /*n*/) { no_cuda("cuda_cast_body_bytes"); }
size_t cuda_cast_encode(const float* /*x*/, int64_t /*n*/, DType /*coding*/, uint8_t* /*body*/,
                        size_t /*body_cap*/) {
  no_cuda("cuda_cast_encode");
}
void cuda_cast_decode(const uint8_t* /*body*/, size_t /*body_bytes*/, DType /*coding*/,
                      float* /*out*/, int64_t /*n*/, bool /*accumulate*/) {
  no_cuda("cuda_cast_decode");
}
void cuda_scatter_add(const CudaSparseList* /*lists*/, size_t /*num_lists*/, float* /*out*/,
                      int64_t /*n*/, bool /*accumulate*/) {
  no_cuda("cuda_scatter_add");
}

void cuda_rand_k_indices(int64_t /*n*/, int64_t /*k*/, uint64_t /*seed_step*/, int64_t* /*idx*/) {
  no_cuda("cuda_rand_k_indices");
}
size_t cuda_rand_k_body_bytes(int64_t /*k*/, DType /*values*/) {
  no_cuda("cuda_rand_k_body_bytes");
}
size_t cuda_rand_k_encode(const float* /*x*/, int64_t /*n*/, int64_t /*k*/, bool /*scale*/,
                          DType /*values*/, uint64_t /*seed_step*/, uint8_t* /*body*/,
                          size_t /*body_cap*/) {
  no_cuda("cuda_rand_k_encode");
}
void cuda_rand_k_decode(const uint8_t* /*body*/, size_t /*body_bytes*/, int64_t /*k*/,
                        DType /*values*/, float* /*out*/, int64_t /*n*/, bool /*accumulate*/) {
  no_cuda("cuda_rand_k_decode");
}

CudaInfo CudaInfo::query() {
  CudaInfo info;
  info.status = "this build of terse has no CUDA support (nvcc was not found or TERSE_CUDA=OFF)";
  return info;
}

}  // namespace terse

// PowerSGD's GPU passes (terse/kernels/cuda_power_sgd.h) for builds without CUDA: each says that
// this build has none; no pointer is device memory.
#include "no_cuda.h"
#include "terse/core/check.h"
#include "terse/kernels/cuda_power_sgd.h"

namespace terse {

using kernels_detail::no_cuda;

void cuda_power_sgd_project(int /*device*/, const float* /*m*/, const float* /*e*/,
                            int64_t /*rows*/, int64_t /*cols*/, const float* /*q*/, int64_t /*r*/,
                            float* /*p*/) {
  no_cuda("cuda_power_sgd_project");
}
void cuda_power_sgd_back_project(int /*device*/, const float* /*m*/, const float* /*e*/,
                                 int64_t /*rows*/, int64_t /*cols*/, const float* /*p*/,
                                 int64_t /*r*/, float* /*q*/) {
  no_cuda("cuda_power_sgd_back_project");
}
void cuda_power_sgd_orthogonalize(int /*device*/, const std::vector<CudaOrthoMatrix>& /*matrices*/,
                                  double /*eps*/) {
  no_cuda("cuda_power_sgd_orthogonalize");
}
void cuda_power_sgd_decompress(int /*device*/, float* /*m*/, float* /*e*/, bool /*add_error*/,
                               int64_t /*rows*/, int64_t /*cols*/, const float* /*p*/,
                               const float* /*q*/, int64_t /*r*/, uint32_t* /*big_error*/) {
  no_cuda("cuda_power_sgd_decompress");
}
void cuda_power_sgd_flag_nonfinite(int /*device*/, const float* /*x*/, int64_t /*n*/,
                                   uint32_t* /*flag*/) {
  no_cuda("cuda_power_sgd_flag_nonfinite");
}
void cuda_power_sgd_flag_nonfinite_sum(int /*device*/, const float* /*x*/, const float* /*y*/,
                                       int64_t /*n*/, uint32_t* /*flag*/) {
  no_cuda("cuda_power_sgd_flag_nonfinite_sum");
}
void cuda_power_sgd_flag_zero_column(int /*device*/, const float* /*q*/, int64_t /*rows*/,
                                     int64_t /*cols*/, uint32_t* /*flag*/) {
  no_cuda("cuda_power_sgd_flag_zero_column");
}
void cuda_power_sgd_wait(int /*device*/) { no_cuda("cuda_power_sgd_wait"); }
bool cuda_power_sgd_is_device_memory(const void* /*p*/, int /*device*/) { return false; }

CudaCurrentDevice::CudaCurrentDevice(int /*device*/) { no_cuda("CudaCurrentDevice"); }
CudaCurrentDevice::~CudaCurrentDevice() = default;

}  // namespace terse

// CudaInfo for builds without CUDA (TERSE_HAVE_CUDA off): no devices, and the reason.
#include "terse/kernels/cuda_info.h"

namespace terse {

CudaInfo CudaInfo::query() {
  CudaInfo info;
  info.status = "this build of terse has no CUDA support (nvcc was not found or TERSE_CUDA=OFF)";
  return info;
}

}  // namespace terse

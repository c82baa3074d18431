#pragma once

// cuBLAS for the CUDA code of terse (PowerSGD's products, src/kernels/cuda/power_sgd.cu; Muon's
// Newton-Schulz, src/optim/cuda/newton_schulz.cu): the status check and one handle per device.
// Internal to src/kernels/cuda and src/optim/cuda.

#include <cublas_v2.h>

#include "terse/core/check.h"

namespace terse::cuda_codec {

inline void cublas_check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    TERSE_THROW(CudaError, what, " failed: ", cublasGetStatusName(status), " (",
                cublasGetStatusString(status), ")");
  }
}

// The cuBLAS handle of `device` (which must be current), made on first use on the legacy default
// stream with the default math mode (no TF32), and never destroyed: a handle destroyed at exit
// could outlive the CUDA context. cuBLAS allows one handle to be used from several host threads
// as long as its settings do not change after it is made, and nothing changes them.
// InvalidArgument for a device index outside [0, 64).
cublasHandle_t cublas_handle(int device);

}  // namespace terse::cuda_codec

#include "cublas_util.cuh"

#include <array>
#include <mutex>

namespace terse::cuda_codec {

cublasHandle_t cublas_handle(int device) {
  constexpr int kMaxDevices = 64;
  TERSE_CHECK(device >= 0 && device < kMaxDevices, InvalidArgument, "cuBLAS handle: device ",
              device, " is out of range; pass a CUDA device index in [0, ", kMaxDevices, ")");
  static std::mutex mu;
  static std::array<cublasHandle_t, kMaxDevices> handles{};
  std::lock_guard<std::mutex> lock(mu);
  cublasHandle_t& h = handles[static_cast<size_t>(device)];
  if (h == nullptr) {
    cublasHandle_t made = nullptr;
    cublas_check(cublasCreate(&made), "cublasCreate");
    cublasStatus_t status = cublasSetStream(made, cudaStreamLegacy);
    if (status == CUBLAS_STATUS_SUCCESS) status = cublasSetMathMode(made, CUBLAS_DEFAULT_MATH);
    if (status != CUBLAS_STATUS_SUCCESS) {
      cublasDestroy(made);
      cublas_check(status, "cublasSetStream / cublasSetMathMode");
    }
    h = made;
  }
  return h;
}

}  // namespace terse::cuda_codec

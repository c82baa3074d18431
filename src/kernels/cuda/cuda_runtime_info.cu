// CudaInfo from the CUDA runtime. No GPU or no driver is a normal answer (zero devices), not
// an error: `terse info` runs on CPU-only machines too.
#include <cuda_runtime.h>

#include <string>

#include "terse/kernels/cuda_info.h"

namespace terse {

CudaInfo CudaInfo::query() {
  CudaInfo info;
  info.compiled = true;
  cudaRuntimeGetVersion(&info.runtime_version);
  if (cudaDriverGetVersion(&info.driver_version) != cudaSuccess) info.driver_version = 0;
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    info.status = std::string("no usable CUDA device: ") + cudaGetErrorName(err) + " (" +
                  cudaGetErrorString(err) + ")";
    cudaGetLastError();  // reset the (non-sticky) error so later runtime calls start clean
    return info;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    const cudaError_t perr = cudaGetDeviceProperties(&prop, i);
    if (perr != cudaSuccess) {
      info.status =
          "cudaGetDeviceProperties(" + std::to_string(i) + ") failed: " + cudaGetErrorString(perr);
      cudaGetLastError();
      return info;
    }
    CudaDeviceInfo d;
    d.index = i;
    d.name = prop.name;
    d.major = prop.major;
    d.minor = prop.minor;
    d.total_memory_bytes = prop.totalGlobalMem;
    d.multiprocessors = prop.multiProcessorCount;
    info.devices.push_back(d);
  }
  info.status = count > 0 ? "ok" : "the CUDA runtime reports 0 devices";
  return info;
}

}  // namespace terse

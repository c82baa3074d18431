#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace terse {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  int major = 0;  // compute capability major.minor
  int minor = 0;
  size_t total_memory_bytes = 0;
  int multiprocessors = 0;
};

// What the CUDA runtime reports. A build without CUDA, a machine without a GPU or without a
// driver all give zero devices and say why in `status`; none of them throws.
struct CudaInfo {
  bool compiled = false;    // this build has terse's CUDA code
  int runtime_version = 0;  // e.g. 13000 for CUDA 13.0; 0 when not compiled
  int driver_version = 0;   // 0 when no driver is installed
  std::vector<CudaDeviceInfo> devices;
  std::string status;  // "ok", or why there are no devices

  static CudaInfo query();
};

}  // namespace terse

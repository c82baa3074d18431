#pragma once

// The parity tests' GPU check: each test skips, saying why, where no CUDA device is usable.

#include <gtest/gtest.h>

#include <string>

#include "terse/kernels/cuda_info.h"

namespace terse::parity {

inline bool have_gpu(std::string* why) {
  const CudaInfo info = CudaInfo::query();
  if (info.devices.empty()) *why = "no CUDA device: " + info.status + "; GPU parity not run";
  return !info.devices.empty();
}

}  // namespace terse::parity

#define TERSE_SKIP_WITHOUT_GPU()                                 \
  do {                                                           \
    std::string why_;                                            \
    if (!::terse::parity::have_gpu(&why_)) GTEST_SKIP() << why_; \
  } while (false)

#pragma once

// What every CUDA entry point says in a build without CUDA (TERSE_HAVE_CUDA off). Internal to
// src/kernels/cpu.

#include "terse/core/check.h"

namespace terse::kernels_detail {

[[noreturn]] inline void no_cuda(const char* what) {
  TERSE_THROW(CudaError, what, ": this build of terse has no CUDA support (nvcc was not found or ",
              "TERSE_CUDA=OFF); rebuild with nvcc on the PATH, or pass CPU tensors");
}

}  // namespace terse::kernels_detail

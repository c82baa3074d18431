#pragma once

// A test kernel for cuda_multi_tensor_test.cc: the GPU's f16 conversions (terse/core/dtype.h,
// the conversion instructions) against the portable ones, on the GPU, over every f16 and every
// f32 bit pattern.

#include <cstdint>
#include <string>

namespace terse::parity {

struct HalfMismatches {
  unsigned long long to_float = 0;  // f16 values whose f32 bits differ
  unsigned long long to_half = 0;   // f32 values whose f16 bits differ
  uint32_t first_to_float = 0;      // the lowest such f16 bits (when to_float > 0)
  uint32_t first_to_half = 0;       // the lowest such f32 bits (when to_half > 0)
};

// false with the CUDA error in `error` when a call fails.
bool gpu_half_mismatches(HalfMismatches& out, std::string& error);

}  // namespace terse::parity

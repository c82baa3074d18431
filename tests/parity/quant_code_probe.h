#pragma once

// A test kernel for cuda_eightbit_test.cc: bucket_map_code (terse/kernels/quant_code.h) on the
// GPU over given values, as the 8-bit step runs it (the midpoints and bucket counts in shared
// memory, the tree in global memory, the value scaled by `scale` in f32 first).

#include <cstdint>
#include <string>
#include <vector>

#include "terse/kernels/cuda_eightbit_step.h"

namespace terse::parity {

// out[i] = bucket_map_code(map.base, map.mid, map.tree, x[i] * scale, map.is_signed,
// map.zero_code) computed on the current GPU; false with the CUDA error in `error` when a call
// fails.
bool gpu_map_codes(const CudaQuantMap& map, const std::vector<float>& x, float scale,
                   std::vector<uint8_t>& out, std::string& error);

}  // namespace terse::parity

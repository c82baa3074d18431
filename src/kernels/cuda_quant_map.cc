// cuda_quant_map (terse/kernels/cuda_eightbit_step.h): host code, built with or without CUDA.
#include <algorithm>

#include "terse/kernels/cuda_eightbit_step.h"
#include "terse/kernels/dynamic_map.h"

namespace terse {

CudaQuantMap cuda_quant_map(const DynamicMap& map) {
  CudaQuantMap c{};
  std::copy(map.codes(), map.codes() + DynamicMap::kCodes, c.code);
  std::copy(map.search_tree(), map.search_tree() + DynamicMap::kCodes, c.tree);
  std::copy(map.sorted_midpoints(), map.sorted_midpoints() + DynamicMap::kCodes, c.mid);
  std::copy(map.bucket_base(), map.bucket_base() + 2 * kQuantBucketsPerSign, c.base);
  c.is_signed = map.is_signed() ? 1 : 0;
  c.zero_code = map.zero_code();
  return c;
}

}  // namespace terse

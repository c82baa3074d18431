// gpu_half_mismatches (half_convert_probe.h): built with the flags of the library's kernels.
#include <cuda_runtime.h>

#include "counting_probe.cuh"
#include "half_convert_probe.h"
#include "terse/core/dtype.h"

namespace terse::parity {
namespace {

__global__ void half_probe_kernel(HalfMismatches* out) {
  const uint64_t stride = uint64_t{gridDim.x} * blockDim.x;
  for (uint64_t i = uint64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < (uint64_t{1} << 32);
       i += stride) {
    const auto u = static_cast<uint32_t>(i);
    if (i < 65536u) {
      const auto h = static_cast<uint16_t>(u);
      if (float_to_bits(to_float(Half{h})) != float_to_bits(half_bits_to_float(h))) {
        atomicAdd(&out->to_float, 1ull);
        atomicMin(&out->first_to_float, u);
      }
    }
    const float f = bits_to_float(u);
    if (to_half(f).bits != float_to_half_bits(f)) {
      atomicAdd(&out->to_half, 1ull);
      atomicMin(&out->first_to_half, u);
    }
  }
}

}  // namespace

bool gpu_half_mismatches(HalfMismatches& out, std::string& error) {
  HalfMismatches init;
  init.first_to_float = init.first_to_half = 0xffffffffu;
  return run_counting_probe(init, out, error,
                            [](HalfMismatches* d) { half_probe_kernel<<<4096, 256>>>(d); });
}

}  // namespace terse::parity

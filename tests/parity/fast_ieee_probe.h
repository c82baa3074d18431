#pragma once

// A test kernel for cuda_eightbit_test.cc: FastIeee (src/kernels/cuda/fast_ieee.cuh) against
// the compiler's IEEE `/` and sqrtf on the device, over operands drawn there.

#include <cstdint>
#include <string>

namespace terse::parity {

struct FastIeeeCounts {
  uint64_t div_fast = 0;   // pairs FastIeee::div took without marking slow
  uint64_t div_wrong = 0;  // of those, results whose bits differ from a / b
  uint64_t sqrt_fast = 0;
  uint64_t sqrt_wrong = 0;
  uint64_t sqrt_div_fast = 0;  // FastIeee::sqrt_div(x, b) against sqrtf(x) / b
  uint64_t sqrt_div_wrong = 0;
  uint32_t div_example[2] = {0, 0};  // the bits of one wrong pair (a, b), if any
  uint32_t sqrt_example = 0;
};

// `n` operand draws from `seed`: random bit patterns, operands with exponents a little past the
// fast ranges on both sides, the ranges' edges, zeros, and typical optimizer magnitudes. False
// with the CUDA error in `error` when a call fails.
bool gpu_check_fast_ieee(uint64_t n, uint64_t seed, FastIeeeCounts& out, std::string& error);

}  // namespace terse::parity

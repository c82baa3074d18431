#pragma once

#include <cstddef>
#include <cstdint>

#include "terse/core/dtype.h"

namespace terse {

// The fp16 / bf16 cast bodies (terse/compress/cast.h) on the GPU: n 16-bit values,
// little-endian, rounded to nearest even with the CPU's to_half / to_bfloat16 (the same
// functions, compiled for the device), so the bytes are the CPU's; decode widens with to_float.
// coding is DType::kF16 or DType::kBF16. Device pointers of the current device, legacy default
// stream, each call returns when done. InvalidArgument for a null or host pointer, bad n, a
// small buffer or another coding; CorruptData on decode for a wrong body length (before `out` is
// written); CudaError from the runtime or in a build without CUDA.
size_t cuda_cast_body_bytes(int64_t n);
size_t cuda_cast_encode(const float* x, int64_t n, DType coding, uint8_t* body, size_t body_cap);
// out[i] = (or +=) to_float(value_i).
void cuda_cast_decode(const uint8_t* body, size_t body_bytes, DType coding, float* out, int64_t n,
                      bool accumulate);

}  // namespace terse

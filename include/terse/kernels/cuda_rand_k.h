#pragma once

#include <cstddef>
#include <cstdint>

#include "terse/core/dtype.h"

namespace terse {

// Random-k (terse/compress/rand_k.h) on the GPU: the same k coordinates as RandK::indices (the
// first k outputs pi(0), ..., pi(k - 1) of the keyed permutation of
// terse/kernels/rand_k_permutation.h, one thread each, then a cub radix sort), the gather, and
// the decode of a body without indices (send_indices=false: the decoder regenerates them from the
// seed in the body). k is the caller's RandK::k_for(n). Device pointers of the current device,
// legacy default stream, each call returns when done. n must be below 2^32 (32-bit sort keys).
// Scratch: about 8 bytes per kept coordinate plus the sort's. InvalidArgument for null or host
// pointers, n or k out of range, a small buffer or another value coding; CorruptData on decode
// for a wrong body length (before `out` is written); CudaError from the runtime or in a build
// without CUDA.

// Writes the k ascending indices to idx[0, k).
void cuda_rand_k_indices(int64_t n, int64_t k, uint64_t seed_step, int64_t* idx);

// The body with send_indices=false: seed_step (u64), then the k values x[idx_j] * factor in
// `values` (DType::kF32, or kF16 rounded as the CPU does), factor = n / k (as f32) with scale,
// else 1. Returns the body bytes, 8 + k * value size.
size_t cuda_rand_k_body_bytes(int64_t k, DType values);
size_t cuda_rand_k_encode(const float* x, int64_t n, int64_t k, bool scale, DType values,
                          uint64_t seed_step, uint8_t* body, size_t body_cap);
// out (zeroed unless accumulate) gets out[idx_j] += value_j, the indices regenerated from the
// body's seed.
void cuda_rand_k_decode(const uint8_t* body, size_t body_bytes, int64_t k, DType values, float* out,
                        int64_t n, bool accumulate);

}  // namespace terse

#pragma once

#include <cstddef>
#include <cstdint>

namespace terse {

// The bodies of the 1-bit compressors (terse/compress/one_bit.h, scaled_sign.h) encoded and
// decoded on the GPU, byte for byte and bit for bit what OneBit / ScaledSign::encode write after
// the 32-byte payload header, and what their decode produces. Every pointer is device memory of
// the current device; work runs on the legacy default stream and each call returns when its
// result is ready (encode reads its reductions back to check them, decode its payload fields).
// A payload is then header (built on the host: write_payload_header with count = n, values
// kNone, indices kImplicit, body_bytes = the returned size) followed by this body.
//
// Reductions: the CPU sums in double in a fixed order, which these follow, so the means / scale
// are identical: OneBit's lane sums added one after the other (the GPU gets that sequential sum's
// bits with src/kernels/cuda/seq_sum.cuh), ScaledSign's ||x||_1 in the blocked order of
// terse/kernels/fixed_order_sum.h (lane partials and a pairwise tree: a parallel reduction,
// fused with the packing of the sign bits, so x is read once).
// Errors: InvalidArgument for a null or host pointer, a negative n, or a body buffer below the
// body size; NumericalError, as the CPU, when x holds NaN or Inf; CorruptData on decode for a
// wrong body length, a mean or scale out of range, or non-zero padding bits, before `out` is
// touched; CudaError when the runtime fails. A build without CUDA throws CudaError.

// OneBit (Seide et al. 2014): body = mean of the negative elements (f32), mean of the
// non-negative ones (f32), then n bits MSB-first, 1 = x_i >= 0 (-0 counts as non-negative).
size_t cuda_onebit_body_bytes(int64_t n);
// Writes the body for x[0, n) at body (room for cuda_onebit_body_bytes(n)); returns its size.
size_t cuda_onebit_encode(const float* x, int64_t n, uint8_t* body, size_t body_cap);
// out[i] = (or +=, with accumulate) bit_i ? mean_+ : mean_-.
void cuda_onebit_decode(const uint8_t* body, size_t body_bytes, float* out, int64_t n,
                        bool accumulate);

// Scaled sign (Karimireddy et al. 2019): body = ||x||_1 / n (f32), then n bits MSB-first,
// 1 = x_i < 0.
size_t cuda_scaled_sign_body_bytes(int64_t n);
size_t cuda_scaled_sign_encode(const float* x, int64_t n, uint8_t* body, size_t body_cap);
// out[i] = (or +=) bit_i ? -scale : scale.
void cuda_scaled_sign_decode(const uint8_t* body, size_t body_bytes, float* out, int64_t n,
                             bool accumulate);

}  // namespace terse

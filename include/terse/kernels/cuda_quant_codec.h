#pragma once

#include <cstddef>
#include <cstdint>

namespace terse {

// The bodies of the stochastic quantisers (terse/compress/qsgd.h, tern_grad.h) on the GPU: the
// same Philox4x32 draws (key seed_step, counter (i / 4, the compressor's stream), word i % 4),
// so the same levels, and the same body bytes as Qsgd / TernGrad::encode after the payload
// header (count = n, values kNone, indices kImplicit); decode gives the CPU's floats. Device
// pointers of the current device, legacy default stream, each call returns when done.
// Errors as in cuda_sign_codec.h: InvalidArgument (null or host pointer, bad n, small buffer,
// levels out of [1, 32767]), NumericalError for NaN or Inf in x, CorruptData on decode (body
// length, levels field, scale, a level above `levels` or TernGrad code 3, padding bits) before
// `out` is written, CudaError from the runtime or in a build without CUDA.

// QSGD (Alistarh et al., NeurIPS 2017), one bucket: body = levels (u32), ||x||_2 (f32, from the
// CPU's double sum of x_i^2 in the order of terse/kernels/fixed_order_sum.h, bit for bit), then per
// element a sign bit and ceil(log2(levels + 1)) level bits, MSB-first; level l_i = floor(s |x_i| /
// ||x||) + 1 with probability of the fractional part.
size_t cuda_qsgd_body_bytes(int64_t n, uint32_t levels);
size_t cuda_qsgd_encode(const float* x, int64_t n, uint32_t levels, uint64_t seed_step,
                        uint8_t* body, size_t body_cap);
// out[i] = (or +=) +-(||x|| / s) * l_i.
void cuda_qsgd_decode(const uint8_t* body, size_t body_bytes, uint32_t levels, float* out,
                      int64_t n, bool accumulate);

// TernGrad (Wen et al., NeurIPS 2017) without clipping: body = s = max|x| (f32), then 2 bits per
// element MSB-first, 00 = 0, 01 = +s, 10 = -s, kept with probability |x_i| / s.
size_t cuda_terngrad_body_bytes(int64_t n);
size_t cuda_terngrad_encode(const float* x, int64_t n, uint64_t seed_step, uint8_t* body,
                            size_t body_cap);
void cuda_terngrad_decode(const uint8_t* body, size_t body_bytes, float* out, int64_t n,
                          bool accumulate);

}  // namespace terse

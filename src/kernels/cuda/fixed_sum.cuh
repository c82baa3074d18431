#pragma once

// The fixed-order double sum of terse/kernels/fixed_order_sum.h on the GPU: one thread per lane
// partial (each its 128 terms in order), then the pairwise tree as aligned subtrees of 256
// leaves per thread block, level after level. Every addition is the CPU's, so the bits are too.
// ScaledSign's pass packs the sign bits on the way (x is read once). Internal to
// src/kernels/cuda.

#include <cstdint>

#include "terse/kernels/fixed_order_sum.h"

namespace terse::cuda_codec {

// Enqueues on the legacy default stream the sum of the terms of x[0, n) (device memory, n >= 1)
// into *out (device). With neg_bits, the first pass also writes n bits MSB-first at neg_bits,
// 1 = x_i < 0, the last byte zero padded (ScaledSign's body after its scale). Asynchronous; uses
// the kChunkSums scratch slot until the work is done.
void enqueue_fixed_sum(const float* x, int64_t n, fixed_sum::Term term, double* out,
                       uint8_t* neg_bits = nullptr);

}  // namespace terse::cuda_codec

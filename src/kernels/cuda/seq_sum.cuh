#pragma once

// Some CPU code sums in double, one term after the other (OneBit: its 16 lane partials of each
// 2048 block in order; the Auon optimizer's sum of squares). A parallel sum rounds differently,
// and its float result (mean, norm) can then differ in the last bit. (ScaledSign's and QSGD's
// norms use a blocked order that a parallel reduction follows instead: fixed_sum.cuh.)
// cuda_sequential_sum gives the sequential double sum's exact bits without serialising it.
//
// Why it works: all terms t_k >= 0, so the partial sums s_k = RN(s_{k-1} + t_k) never decrease.
// While s stays in one binade [2^E, 2^(E+1)), every double there is an integer multiple of
// U = 2^(E-52), so RN(s + t) = U * RNE(s/U + t/U): the integer S = s/U grows by floor(t/U) plus
// 0 or 1 by t's remainder (< U/2: 0, > U/2: 1, = U/2: to even, which depends only on the
// parity of S + floor(t/U)). So a run of terms in one binade acts on S as S + D[S mod 2]: two
// integers per run, computed for all runs in parallel (each term's pair composed in order with a
// block reduction). One thread then walks the runs (chunks of kSeqChunk terms), applying D where
// it can prove the chunk stays in the binade the parallel prefix sum predicted, and adding the
// chunk's terms one by one where it cannot (the few chunks that cross a power of two, and the
// first chunk with a non-zero term). Exact in every case; the serial part is a few chunks.
//
// Internal to src/kernels/cuda.

#include <cstdint>

namespace terse::cuda_codec {

enum class SumTerm { kAbs, kSquare };  // t_k = |double(x_k)| or double(x_k) * double(x_k)

struct SeqSum {
  double sum = 0.0;    // the sequential double sum, bit for bit (when finite)
  bool finite = true;  // false when a term is Inf or NaN (the CPU's sum is then not finite)
};

// Sum over x[0, m) (device memory), in the CPU's order, of the terms of `term`. Synchronous.
SeqSum cuda_sequential_sum(const float* x, int64_t m, SumTerm term);

}  // namespace terse::cuda_codec

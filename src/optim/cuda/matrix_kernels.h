#pragma once

// The GPU passes of AuON and FRUGAL that are not Rules of the multi-tensor executor (a
// reduction, a kernel over one tensor, a masked step), callable from host code (auon.cc,
// frugal.cc). Implemented in cuda/matrix_kernels.cu; a build without CUDA throws CudaError from
// each (cuda_matrix_none.cc). Every pointer is in the memory of `device` (or of the views'
// device); work is enqueued on the legacy default stream after what is already there.

#include <cstdint>

#include "terse/core/tensor_view.h"
#include "terse/kernels/frugal_adam_rule.h"
#include "terse/kernels/frugal_inactive_rule.h"

namespace terse::optim_detail {

// The CPU's `double s = 0; for k in [0, n): s += double(x[k]) * x[k]`, bit for bit (the
// sequential sum of src/kernels/cuda/seq_sum.cuh); NaN when a term is NaN, else +Inf when one is
// infinite, as that loop gives. Waits for the result.
double cuda_sequential_sum_squares(int device, const float* x, int64_t n);

// x[k] = auon_cosh(x[k] * inv * gamma) for k in [0, n) (terse/kernels/auon_rule.h).
void cuda_auon_cosh(int device, float* x, int64_t n, float inv, float gamma);

// One FRUGAL coord-mode step of one matrix: element k takes `adam` on moments m[j], v[j], j its
// rank among the active entries (bit k of `mask` set; j = word_offsets[k / 64] + the set bits
// below k in its word), the others take `rest`. mask and word_offsets have (numel + 63) / 64
// entries; word_offsets[w] is the number of set bits in words 0 .. w-1.
void cuda_frugal_coord_step(const FrugalAdamRule& adam, const FrugalInactiveRule& rest,
                            const uint64_t* mask, const int64_t* word_offsets,
                            const TensorView& param, const TensorView& grad, float* m, float* v);

}  // namespace terse::optim_detail

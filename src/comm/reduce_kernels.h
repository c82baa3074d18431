#pragma once

// Element-wise reductions shared by the backends, so the threads-as-ranks backend and the MPI
// user-defined operation compute bf16/f16 the same way: f32 math, rounded to storage once.

#include <cstdint>
#include <vector>

#include "terse/comm/reduce_op.h"
#include "terse/core/dtype.h"

namespace terse::detail {

// out[i] = op(...op(op(in[0][i], in[1][i]), in[2][i])..., in[k-1][i]): strictly in the given
// order, so the result is bit-identical run to run. bf16/f16 accumulate in f32 and round once.
// Integer sums wrap modulo 2^bits (as MPI_SUM does in practice), never undefined behaviour.
// `out` may alias any input.
void reduce_in_order(const std::vector<const void*>& in, void* out, int64_t n, DType dtype,
                     ReduceOp op);

// inout[i] = op(in[i], inout[i]) for one pair, in f32 math for bf16/f16 (an MPI_User_function).
void combine_pair(const void* in, void* inout, int64_t n, DType dtype, ReduceOp op);

}  // namespace terse::detail

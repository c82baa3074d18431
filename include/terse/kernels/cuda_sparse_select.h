#pragma once

// SparseAllReduce's selection passes on the GPU (docs/collectives.md, "Sparse all-reduce", "On
// the GPU"): the split of sorted (int32 index, f32 value) pairs by index range, the rank-ordered
// sums over a range, the top-q by |value| with the CPU's tie rule (lower index first), the
// checks of fixed-size padded blocks, and the kept flags. Arrays live in the memory of CUDA
// device `device`; work is enqueued on the legacy default stream, ordered with cuda_copy and the
// passes of terse/kernels/cuda_sparse_blocks.h. "Waits" means the call returns with the answer on
// the host. A build without CUDA throws CudaError from each, saying so.

#include <cstdint>
#include <vector>

namespace terse {

// For each bound, the first position i of the increasing idx[0, count) with idx[i] >= bound
// (std::lower_bound). Waits.
std::vector<int64_t> cuda_lower_bounds(int device, const int32_t* idx, int64_t count,
                                       const std::vector<int64_t>& bounds);

// The first position of val[0, count) holding a NaN or an Inf, -1 when none does. Waits.
int64_t cuda_first_non_finite(int device, const float* val, int64_t count);

// A block [begin, end) of a pair array.
struct CudaSpan {
  int64_t begin = 0;
  int64_t end = 0;
};

// For each span in order (one launch each): sums[idx[i] - lo] += val[i] and
// touched[idx[i] - lo] = 1. The indices must lie in [lo, lo + the length of sums) and be unique
// within a span (validated first), so an element receives the spans' values in span order from
// its start value: the float additions of the CPU's loop over the spans. Asynchronous.
void cuda_range_add_spans(int device, const int32_t* idx, const float* val,
                          const std::vector<CudaSpan>& spans, int64_t lo, float* sums,
                          int32_t* touched);

// For every i < range with touched[i] != 0, in increasing i: out_idx = lo + i, out_val = sums[i]
// (compacted to the front). Returns their number. Waits.
int64_t cuda_touched_pairs(int device, const int32_t* touched, const float* sums, int64_t range,
                           int64_t lo, int32_t* out_idx, float* out_val);

// Of `count` pairs with strictly increasing indices in [0, 2^31), the min(q, count) of largest
// |val| (ties: the lower index), written to the front of out_idx / out_val in input order (so
// increasing). A strict total order (|val| then index), so exactly the set the CPU's
// nth_element keeps. flags (or null): 1 for the pairs kept, 0 for the others. The outputs must
// not overlap the inputs. Returns min(q, count); asynchronous.
int64_t cuda_keep_largest(int device, const int32_t* idx, const float* val, int64_t count,
                          int64_t q, int32_t* out_idx, float* out_val, int32_t* flags);

// p[i] = value for i < count. Asynchronous.
void cuda_fill_i32(int device, int32_t* p, int64_t count, int32_t value);

// A padded block's verdict: `real` pairs before the first slot holding the pad index (all of
// them when none does); `bad` when a real index is outside the block's range or not above the
// one before it, a real value is not finite, a slot after the first pad holds another index, or
// a pad slot's value is not 0.
struct CudaPaddedBlock {
  int64_t real = 0;
  bool bad = false;
};

// The verdict of each block r ([offsets[r], offsets[r + 1]) of idx and val) against the range
// [lo[r], hi[r]). Waits.
std::vector<CudaPaddedBlock> cuda_check_padded_blocks(int device, const int32_t* idx,
                                                      const float* val,
                                                      const std::vector<int64_t>& offsets,
                                                      const std::vector<int64_t>& lo,
                                                      const std::vector<int64_t>& hi, int32_t pad);

// The pairs of idx[0, count) whose index is not `pad`, compacted in order to out_idx / out_val.
// Returns their number. Waits.
int64_t cuda_drop_padding(int device, const int32_t* idx, const float* val, int64_t count,
                          int32_t pad, int32_t* out_idx, float* out_val);

// kept_host[i] = 1 when (sent is null or sent[i] != 0) and idx[i] is one of the increasing
// selected[0, s), else 0, for i < count. Waits.
void cuda_kept_flags(int device, const int32_t* idx, int64_t count, const int32_t* sent,
                     const int32_t* selected, int64_t s, uint8_t* kept_host);

// idx[p] for each position p (each < the array's length). Waits.
std::vector<int64_t> cuda_indices_at(int device, const int32_t* idx,
                                     const std::vector<int64_t>& positions);

}  // namespace terse

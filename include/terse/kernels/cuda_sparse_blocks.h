#pragma once

// The GPU passes of the sparse collectives on CUDA views (SparseAllGather, SparseAllReduce;
// docs/collectives.md, "On the GPU"): blocks of (int32 index, f32 value) pairs laid end to end in
// the memory of CUDA device `device`, block r at [offsets[r], offsets[r + 1]) of idx and val.
// Work is enqueued on the legacy default stream, ordered with the caller's kernels and with
// cuda_copy. A build without CUDA throws CudaError from each, saying so.

#include <cstdint>
#include <vector>

namespace terse {

// Per block, the first position j (counted from the block's start) whose index is outside
// [lo, hi) or not above index j - 1 of the same block, as the CPU's scan finds it; -1 for a good
// block. Waits for the answer.
std::vector<int64_t> cuda_first_bad_indices(int device, const int32_t* idx,
                                            const std::vector<int64_t>& offsets, int64_t lo,
                                            int64_t hi);
// The same with block r checked against its own range [lo[r], hi[r]).
std::vector<int64_t> cuda_first_bad_indices_in(int device, const int32_t* idx,
                                               const std::vector<int64_t>& offsets,
                                               const std::vector<int64_t>& lo,
                                               const std::vector<int64_t>& hi);

// out[idx[i]] += val[i], block after block (one launch each, in order). Within a block the
// indices must be unique (validated first), so element e receives the blocks' values in block
// order: the float additions of the CPU's loop over the concatenated blocks. Asynchronous.
void cuda_sparse_add_blocks(int device, const int32_t* idx, const float* val,
                            const std::vector<int64_t>& offsets, float* out);

// out[idx[i]] = val[i] for i < count; the indices unique. Asynchronous.
void cuda_sparse_set(int device, const int32_t* idx, const float* val, int64_t count, float* out);

// Returns when the work enqueued on device `device`'s legacy default stream is done.
void cuda_sparse_wait(int device);

}  // namespace terse

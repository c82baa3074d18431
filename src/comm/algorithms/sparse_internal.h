#pragma once

// Internal to the sparse collectives (sparse_all_gather.cc, sparse_all_reduce.cc): the argument
// checks and the index checks with their messages, shared by both algorithms and by their CPU
// and GPU paths.

#include <cstdint>
#include <string>

#include "terse/comm/algorithms/sparse_all_gather.h"
#include "terse/comm/communicator.h"
#include "terse/core/tensor_view.h"

namespace terse::sparse_detail {

constexpr uint64_t kPairBytes = sizeof(int32_t) + sizeof(float);

// Empty when this rank's arguments are usable, else why not: out a dense f32 buffer of at most
// 2^31 elements, 0 <= count <= numel, buffers present; the pairs and out on one device; on a
// CUDA device, pointers into that GPU's memory; on a communicator of GPU memory (NCCL), views
// on its GPU.
std::string check_arguments(const SparseVector& mine, const TensorView& out,
                            const Communicator& comm);

// The first position in idx[0, count) outside [lo, hi) or not above its predecessor; -1 when
// all are good (the CPU's scan; cuda_first_bad_indices finds the same on the GPU).
int64_t first_bad_index(const int32_t* idx, int64_t count, int64_t lo, int64_t hi);

// Why index `value` at a bad position is bad: outside [lo, hi), or not above `prev` (the index
// before it).
std::string bad_index_reason(int64_t value, int64_t prev, int64_t lo, int64_t hi);

// The index at position `pos` of an index array on `device` (CPU or CUDA).
int64_t index_at(const int32_t* idx, int64_t pos, Device device);

}  // namespace terse::sparse_detail

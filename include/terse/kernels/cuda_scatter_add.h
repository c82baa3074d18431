#pragma once

#include <cstddef>
#include <cstdint>

namespace terse {

// One rank's sparse contribution in device memory: count (index, value) pairs, indices strictly
// increasing (as every sparse payload's delta-varint indices are; so unique).
struct CudaSparseList {
  const int64_t* indices = nullptr;
  const float* values = nullptr;
  int64_t count = 0;
};

// Decode of sparse payloads (Top-k, DGC, Rand-k with indices) on the GPU: out (n floats, device)
// is zeroed unless accumulate, then lists[0], lists[1], ... are added in that order, one launch
// per list; within a list the indices are unique, so each element receives the lists' values in
// rank order, exactly the float additions of the CPU's decode(accumulate = true) rank by rank.
// Every index of every list is validated on the device first (0 <= index < n, strictly
// increasing); a bad one throws CorruptData naming the list, the position and the value, and
// out is not touched. InvalidArgument for null or host pointers or a negative count or n;
// CudaError from the runtime or in a build without CUDA. Returns when done.
void cuda_scatter_add(const CudaSparseList* lists, size_t num_lists, float* out, int64_t n,
                      bool accumulate);

}  // namespace terse

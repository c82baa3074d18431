#pragma once

// The host side of the multi-tensor launches (multi_tensor_apply.cu, eightbit_step.cu,
// projected_apply.cu, param_state_apply.cu): per-tensor descriptors and chunk references are
// laid out in one host byte table, uploaded into device scratch, and the kernels read each
// array at the offset the host recorded. Internal to src/kernels/cuda.

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "codec_util.cuh"
#include "terse/core/dtype.h"

namespace terse::cuda_launch {

// The storage types a param may have, in the order the launches group tensors by.
constexpr int kNumParamTypes = 3;
constexpr DType kParamTypes[kNumParamTypes] = {DType::kF32, DType::kBF16, DType::kF16};

// Block b of a chunked launch handles chunk `chunk` of the tensor of descriptor `task`.
struct ChunkRef {
  int32_t task;
  int32_t chunk;
};

// Appends one ChunkRef per chunk of `chunk_elements` elements of a tensor of n elements, in
// order; `task` is its descriptor's index (the callers check that it and the chunk count fit).
void add_chunks(std::vector<ChunkRef>& chunks, size_t task, int64_t n, int64_t chunk_elements);

// Whether ptr is a multiple of `bytes` (a vector access of that width may use it).
inline bool is_aligned(const void* ptr, size_t bytes) {
  return reinterpret_cast<uintptr_t>(ptr) % bytes == 0;
}

// The host bytes of a launch table. Every array starts at a multiple of kAlign bytes (zero
// padding before it), so it is aligned on the device too (scratch comes from cudaMalloc).
class HostTable {
 public:
  static constexpr size_t kAlign = 16;

  // The table's size once `count` records of V are appended to a table of `size` bytes: what
  // append will give, for a caller that needs the size before the contents.
  template <typename V>
  static size_t size_with(size_t size, size_t count) {
    return (size + kAlign - 1) / kAlign * kAlign + count * sizeof(V);
  }

  // Appends the raw bytes of v[0, count) from the next kAlign boundary; returns that offset.
  template <typename V>
  size_t append(const V* v, size_t count) {
    static_assert(std::is_trivially_copyable_v<V>, "a table holds records the kernels read raw");
    static_assert(alignof(V) <= kAlign, "the table aligns its arrays to kAlign bytes only");
    const size_t at = (bytes_.size() + kAlign - 1) / kAlign * kAlign;
    bytes_.resize(size_with<V>(bytes_.size(), count));
    if (count > 0) std::memcpy(bytes_.data() + at, v, count * sizeof(V));
    return at;
  }
  template <typename V>
  size_t append(const std::vector<V>& v) {
    return append(v.data(), v.size());
  }

  size_t size() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }
  const unsigned char* data() const { return bytes_.data(); }

 private:
  std::vector<unsigned char> bytes_;
};

// Copies the table into the current device's scratch `slot` (cuda_codec::scratch: one growing
// buffer per slot, device and host thread) and returns that device copy. The copy is enqueued
// on the legacy default stream, where every user of the slot launches: it runs after the
// kernels that read the slot's previous table, and before the kernels launched after it. From
// pageable memory, the call returns once the bytes are staged. `what` names it in errors.
unsigned char* upload(const HostTable& table, cuda_codec::Scratch slot, const char* what);
// The same into `dev`, which holds at least table.size() bytes: for a table whose records point
// into its own device copy, so that the buffer is taken before the table is built.
void upload_to(unsigned char* dev, const HostTable& table, const char* what);

// The table of a one-pass launch per param storage type (multi_tensor_apply.cu,
// param_state_apply.cu): for each type in kParamTypes order, the descriptors of its tensors,
// then one ChunkRef per chunk of them; the kernel of type k reads both arrays of k.
template <typename Desc>
class PerTypeTable {
 public:
  // Adds a tensor of storage type kParamTypes[k] of n > 0 elements, described by d.
  void add(int k, const Desc& d, int64_t n, int64_t chunk_elements) {
    add_chunks(chunks_[k], descs_[k].size(), n, chunk_elements);
    descs_[k].push_back(d);
  }

  // True when no tensor was added.
  bool empty() const {
    for (const std::vector<Desc>& d : descs_) {
      if (!d.empty()) return false;
    }
    return true;
  }

  // Uploads the table into `slot` of the current device (see upload), then for each type with
  // tensors calls launch(type, descs, chunks, blocks) with that type's arrays on the device and
  // its number of chunks, for a grid of one block per chunk.
  template <typename Launch>
  void launch(cuda_codec::Scratch slot, const char* what, Launch&& launch) const {
    HostTable table;
    size_t desc_at[kNumParamTypes], chunk_at[kNumParamTypes];
    for (int k = 0; k < kNumParamTypes; ++k) {
      desc_at[k] = table.append(descs_[k]);
      chunk_at[k] = table.append(chunks_[k]);
    }
    const unsigned char* dev = upload(table, slot, what);
    for (int k = 0; k < kNumParamTypes; ++k) {
      if (chunks_[k].empty()) continue;
      launch(kParamTypes[k], reinterpret_cast<const Desc*>(dev + desc_at[k]),
             reinterpret_cast<const ChunkRef*>(dev + chunk_at[k]),
             static_cast<unsigned>(chunks_[k].size()));
    }
  }

 private:
  std::vector<Desc> descs_[kNumParamTypes];
  std::vector<ChunkRef> chunks_[kNumParamTypes];
};

// Runs fn() with `device` current, then restores the caller's device (also when fn throws).
template <typename Fn>
void with_device(int device, Fn&& fn) {
  int previous = 0;
  cuda_codec::cuda_check(cudaGetDevice(&previous), "cudaGetDevice");
  cuda_codec::cuda_check(cudaSetDevice(device), "cudaSetDevice");
  try {
    fn();
  } catch (...) {
    cudaSetDevice(previous);
    throw;
  }
  cuda_codec::cuda_check(cudaSetDevice(previous), "cudaSetDevice");
}

}  // namespace terse::cuda_launch

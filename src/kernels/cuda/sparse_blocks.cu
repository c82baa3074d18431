// The sparse collectives' GPU passes (terse/kernels/cuda_sparse_blocks.h).
#include <vector>

#include "codec_util.cuh"
#include "terse/kernels/cuda_power_sgd.h"
#include "terse/kernels/cuda_sparse_blocks.h"

namespace terse {

using cuda_codec::blocks_for;
using cuda_codec::check_launch;
using cuda_codec::cuda_check;
using cuda_codec::Scratch;

namespace {

constexpr int kThreads = 256;
constexpr unsigned long long kNoBad = ~0ull;

// The first position j whose index is outside [lo, hi) or not above index j - 1: position j
// fails on idx[j - 1] and idx[j] alone, so the smallest failing j is the CPU scan's answer.
__global__ void __launch_bounds__(kThreads)
    first_bad_kernel(const int32_t* __restrict__ idx, int64_t count, int64_t lo, int64_t hi,
                     unsigned long long* __restrict__ first_bad) {
  const int64_t j = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (j >= count) return;
  const int64_t v = idx[j];
  const bool ok = v >= lo && v < hi && (j == 0 || int64_t{idx[j - 1]} < v);
  if (!ok) atomicMin(first_bad, static_cast<unsigned long long>(j));
}

// Indices unique within a block: no two threads touch one element.
__global__ void __launch_bounds__(kThreads)
    add_kernel(const int32_t* __restrict__ idx, const float* __restrict__ val, int64_t count,
               float* __restrict__ out) {
  const int64_t j = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (j >= count) return;
  out[idx[j]] += val[j];
}

__global__ void __launch_bounds__(kThreads)
    set_kernel(const int32_t* __restrict__ idx, const float* __restrict__ val, int64_t count,
               float* __restrict__ out) {
  const int64_t j = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (j >= count) return;
  out[idx[j]] = val[j];
}

void check_offsets(const std::vector<int64_t>& offsets, const char* fn) {
  TERSE_CHECK(offsets.empty() || offsets[0] >= 0, InvalidArgument, fn, ": the first offset is ",
              offsets.empty() ? 0 : offsets[0], "; expected >= 0");
  for (size_t r = 1; r < offsets.size(); ++r) {
    TERSE_CHECK(offsets[r] >= offsets[r - 1], InvalidArgument, fn, ": offset ", r, " is ",
                offsets[r], " after ", offsets[r - 1], "; block offsets must not decrease");
  }
}

}  // namespace

std::vector<int64_t> cuda_first_bad_indices(int device, const int32_t* idx,
                                            const std::vector<int64_t>& offsets, int64_t lo,
                                            int64_t hi) {
  const size_t blocks = offsets.empty() ? 0 : offsets.size() - 1;
  return cuda_first_bad_indices_in(device, idx, offsets, std::vector<int64_t>(blocks, lo),
                                   std::vector<int64_t>(blocks, hi));
}

std::vector<int64_t> cuda_first_bad_indices_in(int device, const int32_t* idx,
                                               const std::vector<int64_t>& offsets,
                                               const std::vector<int64_t>& lo,
                                               const std::vector<int64_t>& hi) {
  const char* fn = "cuda_first_bad_indices";
  check_offsets(offsets, fn);
  const size_t blocks = offsets.empty() ? 0 : offsets.size() - 1;
  TERSE_CHECK(lo.size() == blocks && hi.size() == blocks, InvalidArgument, fn, ": ", blocks,
              " blocks but ", lo.size(), " and ", hi.size(),
              " range ends; pass one range per block");
  std::vector<int64_t> bad(blocks, -1);
  if (blocks == 0 || offsets.back() == offsets.front()) return bad;
  const CudaCurrentDevice current(device);
  const size_t bytes = blocks * sizeof(unsigned long long);
  auto* first = static_cast<unsigned long long*>(cuda_codec::scratch(Scratch::kFlags, bytes));
  cuda_check(cudaMemsetAsync(first, 0xff, bytes, cudaStreamLegacy), "cudaMemsetAsync (flags)");
  for (size_t r = 0; r < blocks; ++r) {
    const int64_t count = offsets[r + 1] - offsets[r];
    if (count == 0) continue;
    first_bad_kernel<<<blocks_for(count, kThreads), kThreads, 0, cudaStreamLegacy>>>(
        idx + offsets[r], count, lo[r], hi[r], first + r);
    check_launch("first_bad_kernel launch");
  }
  std::vector<unsigned long long> h(blocks);
  // A plain cudaMemcpy waits for the legacy default stream's kernels above.
  cuda_codec::to_host(h.data(), first, bytes, "copy of the index validation");
  for (size_t r = 0; r < blocks; ++r) {
    if (h[r] != kNoBad) bad[r] = static_cast<int64_t>(h[r]);
  }
  return bad;
}

void cuda_sparse_add_blocks(int device, const int32_t* idx, const float* val,
                            const std::vector<int64_t>& offsets, float* out) {
  check_offsets(offsets, "cuda_sparse_add_blocks");
  const CudaCurrentDevice current(device);
  for (size_t r = 0; r + 1 < offsets.size(); ++r) {
    const int64_t count = offsets[r + 1] - offsets[r];
    if (count == 0) continue;
    add_kernel<<<blocks_for(count, kThreads), kThreads, 0, cudaStreamLegacy>>>(
        idx + offsets[r], val + offsets[r], count, out);
    check_launch("the sparse add kernel's launch");
  }
}

void cuda_sparse_set(int device, const int32_t* idx, const float* val, int64_t count, float* out) {
  TERSE_CHECK(count >= 0, InvalidArgument, "cuda_sparse_set: count is ", count, "; expected >= 0");
  if (count == 0) return;
  const CudaCurrentDevice current(device);
  set_kernel<<<blocks_for(count, kThreads), kThreads, 0, cudaStreamLegacy>>>(idx, val, count, out);
  check_launch("the sparse set kernel's launch");
}

void cuda_sparse_wait(int device) {
  const CudaCurrentDevice current(device);
  cuda_check(cudaStreamSynchronize(cudaStreamLegacy), "cudaStreamSynchronize (sparse)");
}

}  // namespace terse

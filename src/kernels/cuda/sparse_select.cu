// SparseAllReduce's selection passes on the GPU (terse/kernels/cuda_sparse_select.h).
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>
#include <vector>

#include "codec_util.cuh"
#include "terse/kernels/cuda_power_sgd.h"
#include "terse/kernels/cuda_sparse_select.h"

namespace terse {

using cuda_codec::blocks_for;
using cuda_codec::check_launch;
using cuda_codec::cuda_check;
using cuda_codec::Scratch;
using cuda_codec::scratch;
using cuda_codec::to_device;
using cuda_codec::to_host;

namespace {

constexpr int kThreads = 256;
constexpr unsigned long long kNone = ~0ull;
constexpr uint32_t kExponent = 0x7f800000u;  // all ones: Inf or NaN

__device__ __forceinline__ int64_t thread_item() {
  return int64_t{blockIdx.x} * kThreads + threadIdx.x;
}

// The first position i of the increasing a[0, n) with a[i] >= v.
__device__ __forceinline__ int64_t lower_bound(const int32_t* a, int64_t n, int64_t v) {
  int64_t first = 0, len = n;
  while (len > 0) {
    const int64_t half = len / 2;
    if (int64_t{a[first + half]} < v) {
      first += half + 1;
      len -= half + 1;
    } else {
      len = half;
    }
  }
  return first;
}

__global__ void __launch_bounds__(kThreads)
    lower_bounds_kernel(const int32_t* __restrict__ idx, int64_t count,
                        const int64_t* __restrict__ bounds, int64_t nb, int64_t* __restrict__ pos) {
  const int64_t j = thread_item();
  if (j < nb) pos[j] = lower_bound(idx, count, bounds[j]);
}

__global__ void __launch_bounds__(kThreads)
    first_non_finite_kernel(const float* __restrict__ val, int64_t count,
                            unsigned long long* __restrict__ first) {
  const int64_t j = thread_item();
  if (j >= count) return;
  if ((__float_as_uint(val[j]) & kExponent) == kExponent) {
    atomicMin(first, static_cast<unsigned long long>(j));
  }
}

// Indices unique within a span: no two threads touch one element.
__global__ void __launch_bounds__(kThreads)
    range_add_kernel(const int32_t* __restrict__ idx, const float* __restrict__ val, int64_t count,
                     int64_t lo, float* __restrict__ sums, int32_t* __restrict__ touched) {
  const int64_t j = thread_item();
  if (j >= count) return;
  const int64_t at = int64_t{idx[j]} - lo;
  sums[at] += val[j];
  touched[at] = 1;
}

__global__ void __launch_bounds__(kThreads)
    fill_kernel(int32_t* __restrict__ p, int64_t count, int32_t value) {
  const int64_t j = thread_item();
  if (j < count) p[j] = value;
}

// Larger key = kept first: |val| (non-negative floats order as their bits), then the lower index
// (indices in [0, 2^31), so 2^32 - 1 - index is larger for a lower one). Distinct indices make
// the keys distinct: a strict total order, the CPU comparator's.
__global__ void __launch_bounds__(kThreads)
    keys_kernel(const int32_t* __restrict__ idx, const float* __restrict__ val, int64_t count,
                unsigned long long* __restrict__ keys) {
  const int64_t j = thread_item();
  if (j >= count) return;
  const unsigned long long mag = __float_as_uint(fabsf(val[j]));
  keys[j] = mag << 32 | (0xffffffffull - static_cast<uint32_t>(idx[j]));
}

// flags[j] = 1 for the keys at or above the q-th largest (*threshold): exactly q of them.
__global__ void __launch_bounds__(kThreads)
    top_flags_kernel(const unsigned long long* __restrict__ keys,
                     const unsigned long long* __restrict__ threshold, int64_t count,
                     int32_t* __restrict__ flags) {
  const int64_t j = thread_item();
  if (j < count) flags[j] = keys[j] >= *threshold ? 1 : 0;
}

__global__ void __launch_bounds__(kThreads)
    not_pad_kernel(const int32_t* __restrict__ idx, int64_t count, int32_t pad,
                   int32_t* __restrict__ flags) {
  const int64_t j = thread_item();
  if (j < count) flags[j] = idx[j] != pad ? 1 : 0;
}

// out[prefix[j]] = pair j for the flagged j (idx null: the index lo + j).
__global__ void __launch_bounds__(kThreads)
    compact_kernel(const int32_t* __restrict__ flags, const int32_t* __restrict__ prefix,
                   int64_t count, const int32_t* __restrict__ idx, int64_t lo,
                   const float* __restrict__ val, int32_t* __restrict__ out_idx,
                   float* __restrict__ out_val) {
  const int64_t j = thread_item();
  if (j >= count || flags[j] == 0) return;
  const int64_t at = prefix[j];
  out_idx[at] = idx != nullptr ? idx[j] : static_cast<int32_t>(lo + j);
  out_val[at] = val[j];
}

__global__ void __launch_bounds__(kThreads)
    first_pad_kernel(const int32_t* __restrict__ idx, int64_t size, int32_t pad,
                     unsigned long long* __restrict__ first_pad) {
  const int64_t j = thread_item();
  if (j < size && idx[j] == pad) atomicMin(first_pad, static_cast<unsigned long long>(j));
}

// Slot j fails on idx[j - 1], idx[j] and val[j] alone, given where the padding starts.
__global__ void __launch_bounds__(kThreads)
    padded_check_kernel(const int32_t* __restrict__ idx, const float* __restrict__ val,
                        int64_t size, int64_t lo, int64_t hi, int32_t pad,
                        const unsigned long long* __restrict__ first_pad,
                        unsigned long long* __restrict__ bad) {
  const int64_t j = thread_item();
  if (j >= size) return;
  const unsigned long long fp = *first_pad;
  const int64_t real = fp == kNone ? size : static_cast<int64_t>(fp);
  bool ok;
  if (j < real) {
    const int64_t v = idx[j];
    ok = v >= lo && v < hi && (j == 0 || int64_t{idx[j - 1]} < v) &&
         (__float_as_uint(val[j]) & kExponent) != kExponent;
  } else {
    ok = idx[j] == pad && val[j] == 0.0f;
  }
  if (!ok) atomicMin(bad, static_cast<unsigned long long>(j));
}

__global__ void __launch_bounds__(kThreads)
    kept_kernel(const int32_t* __restrict__ idx, int64_t count, const int32_t* __restrict__ sent,
                const int32_t* __restrict__ selected, int64_t s, uint8_t* __restrict__ kept) {
  const int64_t j = thread_item();
  if (j >= count) return;
  uint8_t in = 0;
  if (sent == nullptr || sent[j] != 0) {
    const int32_t v = idx[j];
    const int64_t at = lower_bound(selected, s, v);
    in = at < s && selected[at] == v ? 1 : 0;
  }
  kept[j] = in;
}

__global__ void __launch_bounds__(kThreads)
    indices_at_kernel(const int32_t* __restrict__ idx, const int64_t* __restrict__ pos, int64_t n,
                      int64_t* __restrict__ out) {
  const int64_t j = thread_item();
  if (j < n) out[j] = idx[pos[j]];
}

void check_count(int64_t count, const char* fn, const char* what) {
  TERSE_CHECK(count >= 0 && count <= (int64_t{1} << 31), InvalidArgument, fn, ": ", what, " is ",
              count, "; expected 0 <= ", what, " <= 2^31");
}

// The flagged pairs of [0, count) (count >= 1) compacted to the front of out_idx / out_val in
// order. With `wait`, returns their number once known; else -1 at once.
int64_t compact(const int32_t* flags, int64_t count, const int32_t* idx, int64_t lo,
                const float* val, int32_t* out_idx, float* out_val, bool wait) {
  auto* prefix = static_cast<int32_t*>(scratch(Scratch::kChunkPrefix, sizeof(int32_t) * count));
  size_t tmp_bytes = 0;
  cuda_check(
      cub::DeviceScan::ExclusiveSum(nullptr, tmp_bytes, flags, prefix, count, cudaStreamLegacy),
      "cub::DeviceScan::ExclusiveSum (size)");
  void* tmp = scratch(Scratch::kCub, tmp_bytes);
  cuda_check(cub::DeviceScan::ExclusiveSum(tmp, tmp_bytes, flags, prefix, count, cudaStreamLegacy),
             "cub::DeviceScan::ExclusiveSum");
  compact_kernel<<<blocks_for(count, kThreads), kThreads, 0, cudaStreamLegacy>>>(
      flags, prefix, count, idx, lo, val, out_idx, out_val);
  check_launch("compact_kernel launch");
  if (!wait) return -1;
  // The last prefix plus the last flag (below 2^31 each; the sum in 64 bits).
  int32_t last[2] = {0, 0};
  to_host(&last[0], prefix + count - 1, sizeof(int32_t), "copy of the compaction's prefix");
  to_host(&last[1], flags + count - 1, sizeof(int32_t), "copy of the compaction's flag");
  return int64_t{last[0]} + int64_t{last[1]};
}

}  // namespace

std::vector<int64_t> cuda_lower_bounds(int device, const int32_t* idx, int64_t count,
                                       const std::vector<int64_t>& bounds) {
  check_count(count, "cuda_lower_bounds", "count");
  const auto nb = static_cast<int64_t>(bounds.size());
  std::vector<int64_t> pos(bounds.size(), 0);
  if (nb == 0) return pos;
  const CudaCurrentDevice current(device);
  auto* d = static_cast<int64_t*>(scratch(Scratch::kIndices, 2 * sizeof(int64_t) * bounds.size()));
  to_device(d, bounds.data(), sizeof(int64_t) * bounds.size(), "copy of the range bounds");
  lower_bounds_kernel<<<blocks_for(nb, kThreads), kThreads, 0, cudaStreamLegacy>>>(idx, count, d,
                                                                                   nb, d + nb);
  check_launch("lower_bounds_kernel launch");
  to_host(pos.data(), d + nb, sizeof(int64_t) * pos.size(), "copy of the range starts");
  return pos;
}

int64_t cuda_first_non_finite(int device, const float* val, int64_t count) {
  check_count(count, "cuda_first_non_finite", "count");
  if (count == 0) return -1;
  const CudaCurrentDevice current(device);
  auto* first = static_cast<unsigned long long*>(scratch(Scratch::kFlags, sizeof(kNone)));
  cuda_check(cudaMemsetAsync(first, 0xff, sizeof(kNone), cudaStreamLegacy),
             "cudaMemsetAsync (non-finite flag)");
  first_non_finite_kernel<<<blocks_for(count, kThreads), kThreads, 0, cudaStreamLegacy>>>(
      val, count, first);
  check_launch("first_non_finite_kernel launch");
  unsigned long long h = kNone;
  to_host(&h, first, sizeof h, "copy of the non-finite position");
  return h == kNone ? -1 : static_cast<int64_t>(h);
}

void cuda_range_add_spans(int device, const int32_t* idx, const float* val,
                          const std::vector<CudaSpan>& spans, int64_t lo, float* sums,
                          int32_t* touched) {
  const CudaCurrentDevice current(device);
  for (const CudaSpan& s : spans) {
    TERSE_CHECK(s.begin >= 0 && s.end >= s.begin, InvalidArgument, "cuda_range_add_spans: span [",
                s.begin, ", ", s.end, ") is not a range of positions; expected 0 <= begin <= end");
    const int64_t count = s.end - s.begin;
    if (count == 0) continue;
    range_add_kernel<<<blocks_for(count, kThreads), kThreads, 0, cudaStreamLegacy>>>(
        idx + s.begin, val + s.begin, count, lo, sums, touched);
    check_launch("range_add_kernel launch");
  }
}

int64_t cuda_touched_pairs(int device, const int32_t* touched, const float* sums, int64_t range,
                           int64_t lo, int32_t* out_idx, float* out_val) {
  check_count(range, "cuda_touched_pairs", "range");
  if (range == 0) return 0;
  const CudaCurrentDevice current(device);
  return compact(touched, range, nullptr, lo, sums, out_idx, out_val, true);
}

void cuda_fill_i32(int device, int32_t* p, int64_t count, int32_t value) {
  TERSE_CHECK(count >= 0, InvalidArgument, "cuda_fill_i32: count is ", count, "; expected >= 0");
  if (count == 0) return;
  const CudaCurrentDevice current(device);
  fill_kernel<<<blocks_for(count, kThreads), kThreads, 0, cudaStreamLegacy>>>(p, count, value);
  check_launch("fill_kernel launch");
}

int64_t cuda_keep_largest(int device, const int32_t* idx, const float* val, int64_t count,
                          int64_t q, int32_t* out_idx, float* out_val, int32_t* flags) {
  check_count(count, "cuda_keep_largest", "count");
  TERSE_CHECK(q >= 0, InvalidArgument, "cuda_keep_largest: q is ", q, "; expected >= 0");
  if (count == 0) return 0;
  const int64_t keep = std::min(q, count);
  const CudaCurrentDevice current(device);
  if (keep == count) {
    cuda_check(cudaMemcpyAsync(out_idx, idx, sizeof(int32_t) * static_cast<size_t>(count),
                               cudaMemcpyDeviceToDevice, cudaStreamLegacy),
               "cudaMemcpyAsync (kept indices)");
    cuda_check(cudaMemcpyAsync(out_val, val, sizeof(float) * static_cast<size_t>(count),
                               cudaMemcpyDeviceToDevice, cudaStreamLegacy),
               "cudaMemcpyAsync (kept values)");
    if (flags != nullptr) cuda_fill_i32(device, flags, count, 1);
    return keep;
  }
  if (keep == 0) {
    if (flags != nullptr) cuda_fill_i32(device, flags, count, 0);
    return 0;
  }
  const size_t key_bytes = sizeof(unsigned long long) * static_cast<size_t>(count);
  auto* keys = static_cast<unsigned long long*>(scratch(Scratch::kPartials, key_bytes));
  auto* sorted = static_cast<unsigned long long*>(scratch(Scratch::kPartials2, key_bytes));
  int32_t* f = flags != nullptr
                   ? flags
                   : static_cast<int32_t*>(scratch(Scratch::kChunkSums, sizeof(int32_t) * count));
  const unsigned grid = blocks_for(count, kThreads);
  keys_kernel<<<grid, kThreads, 0, cudaStreamLegacy>>>(idx, val, count, keys);
  check_launch("keys_kernel launch");
  size_t tmp_bytes = 0;
  cuda_check(cub::DeviceRadixSort::SortKeysDescending(nullptr, tmp_bytes, keys, sorted, count, 0,
                                                      64, cudaStreamLegacy),
             "cub::DeviceRadixSort::SortKeysDescending (size)");
  void* tmp = scratch(Scratch::kCub, tmp_bytes);
  cuda_check(cub::DeviceRadixSort::SortKeysDescending(tmp, tmp_bytes, keys, sorted, count, 0, 64,
                                                      cudaStreamLegacy),
             "cub::DeviceRadixSort::SortKeysDescending");
  top_flags_kernel<<<grid, kThreads, 0, cudaStreamLegacy>>>(keys, sorted + (keep - 1), count, f);
  check_launch("top_flags_kernel launch");
  compact(f, count, idx, 0, val, out_idx, out_val, false);
  return keep;
}

std::vector<CudaPaddedBlock> cuda_check_padded_blocks(int device, const int32_t* idx,
                                                      const float* val,
                                                      const std::vector<int64_t>& offsets,
                                                      const std::vector<int64_t>& lo,
                                                      const std::vector<int64_t>& hi, int32_t pad) {
  const char* fn = "cuda_check_padded_blocks";
  const size_t blocks = offsets.empty() ? 0 : offsets.size() - 1;
  TERSE_CHECK(lo.size() == blocks && hi.size() == blocks, InvalidArgument, fn, ": ", blocks,
              " blocks but ", lo.size(), " and ", hi.size(),
              " range ends; pass one range per block");
  for (size_t r = 0; r < blocks; ++r) {
    TERSE_CHECK(offsets[r] >= 0 && offsets[r + 1] >= offsets[r], InvalidArgument, fn, ": block ", r,
                " is [", offsets[r], ", ", offsets[r + 1],
                "); offsets must start at >= 0 and not decrease");
  }
  std::vector<CudaPaddedBlock> out(blocks);
  if (blocks == 0) return out;
  const CudaCurrentDevice current(device);
  const size_t bytes = 2 * blocks * sizeof(unsigned long long);
  auto* words = static_cast<unsigned long long*>(scratch(Scratch::kFlags, bytes));
  unsigned long long* first_pad = words;
  unsigned long long* bad = words + blocks;
  cuda_check(cudaMemsetAsync(words, 0xff, bytes, cudaStreamLegacy), "cudaMemsetAsync (blocks)");
  for (size_t r = 0; r < blocks; ++r) {
    const int64_t size = offsets[r + 1] - offsets[r];
    if (size == 0) continue;
    const unsigned grid = blocks_for(size, kThreads);
    first_pad_kernel<<<grid, kThreads, 0, cudaStreamLegacy>>>(idx + offsets[r], size, pad,
                                                              first_pad + r);
    check_launch("first_pad_kernel launch");
    padded_check_kernel<<<grid, kThreads, 0, cudaStreamLegacy>>>(
        idx + offsets[r], val + offsets[r], size, lo[r], hi[r], pad, first_pad + r, bad + r);
    check_launch("padded_check_kernel launch");
  }
  std::vector<unsigned long long> h(2 * blocks);
  to_host(h.data(), words, bytes, "copy of the block checks");
  for (size_t r = 0; r < blocks; ++r) {
    const int64_t size = offsets[r + 1] - offsets[r];
    out[r].real = h[r] == kNone ? size : static_cast<int64_t>(h[r]);
    out[r].bad = h[blocks + r] != kNone;
  }
  return out;
}

int64_t cuda_drop_padding(int device, const int32_t* idx, const float* val, int64_t count,
                          int32_t pad, int32_t* out_idx, float* out_val) {
  check_count(count, "cuda_drop_padding", "count");
  if (count == 0) return 0;
  const CudaCurrentDevice current(device);
  auto* flags = static_cast<int32_t*>(scratch(Scratch::kChunkSums, sizeof(int32_t) * count));
  not_pad_kernel<<<blocks_for(count, kThreads), kThreads, 0, cudaStreamLegacy>>>(idx, count, pad,
                                                                                 flags);
  check_launch("not_pad_kernel launch");
  return compact(flags, count, idx, 0, val, out_idx, out_val, true);
}

void cuda_kept_flags(int device, const int32_t* idx, int64_t count, const int32_t* sent,
                     const int32_t* selected, int64_t s, uint8_t* kept_host) {
  check_count(count, "cuda_kept_flags", "count");
  check_count(s, "cuda_kept_flags", "the selection's length");
  if (count == 0) return;
  const CudaCurrentDevice current(device);
  auto* kept = static_cast<uint8_t*>(scratch(Scratch::kIndices, static_cast<size_t>(count)));
  kept_kernel<<<blocks_for(count, kThreads), kThreads, 0, cudaStreamLegacy>>>(idx, count, sent,
                                                                              selected, s, kept);
  check_launch("kept_kernel launch");
  to_host(kept_host, kept, static_cast<size_t>(count), "copy of the kept flags");
}

std::vector<int64_t> cuda_indices_at(int device, const int32_t* idx,
                                     const std::vector<int64_t>& positions) {
  const auto n = static_cast<int64_t>(positions.size());
  std::vector<int64_t> out(positions.size(), 0);
  if (n == 0) return out;
  const CudaCurrentDevice current(device);
  auto* d = static_cast<int64_t*>(scratch(Scratch::kIndices, 2 * sizeof(int64_t) * out.size()));
  to_device(d, positions.data(), sizeof(int64_t) * out.size(), "copy of the positions");
  indices_at_kernel<<<blocks_for(n, kThreads), kThreads, 0, cudaStreamLegacy>>>(idx, d, n, d + n);
  check_launch("indices_at_kernel launch");
  to_host(out.data(), d + n, sizeof(int64_t) * out.size(), "copy of the indices");
  return out;
}

}  // namespace terse

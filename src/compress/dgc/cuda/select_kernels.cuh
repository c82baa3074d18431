#pragma once

// The GPU passes of CudaDgcSelector (the radix select is in radix_select.cuh): the control block,
// tile counts and an order-keeping compaction by a threshold (with a budget for ties at the k-th
// value), the momentum correction that lists candidates, and the strided sample. Private to
// terse_dgc.

#include <cuda_runtime.h>

#include <cstdint>
#include <cub/block/block_load.cuh>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

namespace terse::dgc_cuda {

constexpr int kThreads = 256;
constexpr int kItems = 16;
constexpr int64_t kTile = int64_t{kThreads} * kItems;  // elements per block in the tile passes
constexpr int kBins = 2048;                            // 11-bit radix digits
constexpr unsigned long long kNoNan = ~0ull;
// Tile counts are also summed per group of 2^kGroupShift tiles (Ctl::groups), so a compaction can
// find a tile's output offset without a separate scan over all tiles.
constexpr int kGroupShift = 10;
constexpr int kGroups = 64;  // up to 2^16 tiles (268M elements); beyond, a scan kernel

// Device-side control block: counters the host reads back in one copy, and the radix select's
// running state.
struct Ctl {
  unsigned long long count;      // the last count pass: elements selected (> t in tie mode)
  unsigned long long nan_first;  // lowest index whose |x| is NaN; kNoNan when none
  unsigned long long aux;        // a second count (sample values >= the provisional threshold)
  unsigned long long list_hits;  // step(): elements at or above the provisional threshold
  float thr;                     // the threshold of kGe passes
  float hint;                    // step()'s provisional threshold (DgcStepState::hint)
  unsigned int overflow;         // a stash pass found more hits in a tile than its slots
  uint32_t result[2];            // radix select results (bits of |a|), by slot
  unsigned int floored;          // the floor select found result[0] (floor_select.cuh)
  long long groups[kGroups];     // the last count pass's counts, summed per group of tiles
};

__device__ __forceinline__ uint32_t mag_bits(float x) { return __float_as_uint(x) & 0x7fffffffu; }

// What a pass selects: kGe, |a| >= ctl->thr (a float compare, so NaN never); kTie, the bits of |a|
// above result[slot] (class 1) or equal to it (class 2).
enum class Mode { kGe, kTie };

template <Mode kMode>
__device__ __forceinline__ int classify(float x, float thr, uint32_t t) {
  if constexpr (kMode == Mode::kGe) {
    return fabsf(x) >= thr ? 1 : 0;
  } else {
    const uint32_t b = mag_bits(x);
    return b > t ? 1 : (b == t ? 2 : 0);
  }
}

// Pass 1 of a compaction: per tile (kTile elements) the class-1 and class-2 counts; their totals
// in ctl->count (class 1) and ctl->aux (class 2).
template <Mode kMode>
__global__ void __launch_bounds__(kThreads)
    tile_count_kernel(const float* __restrict__ a, int64_t m, Ctl* ctl, int slot,
                      long long* __restrict__ tile_c1, long long* __restrict__ tile_c2) {
  const int64_t begin = int64_t{blockIdx.x} * kTile;
  int c1 = 0;
  int c2 = 0;
  if (begin < m) {
    const float thr = ctl->thr;
    const uint32_t t = ctl->result[slot];
#pragma unroll
    for (int j = 0; j < kItems; ++j) {
      const int64_t i = begin + int64_t{j} * kThreads + threadIdx.x;
      if (i < m) {
        const int c = classify<kMode>(a[i], thr, t);
        c1 += c == 1;
        c2 += c == 2;
      }
    }
  }
  using Reduce = cub::BlockReduce<int, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  const int s1 = Reduce(tmp).Sum(c1);
  __syncthreads();
  const int s2 = Reduce(tmp).Sum(c2);
  if (threadIdx.x == 0) {
    tile_c1[blockIdx.x] = s1;
    tile_c2[blockIdx.x] = s2;
    if (s1 != 0) atomicAdd(&ctl->count, static_cast<unsigned long long>(s1));
    if (s2 != 0) atomicAdd(&ctl->aux, static_cast<unsigned long long>(s2));
  }
}

// Between the passes, one block: each tile's first output position and the class-2 elements of
// the tiles before it. Class 2 takes the first `k - ctl->count` in order (kTie; none in kGe).
__global__ void __launch_bounds__(1024)
    tile_offsets_kernel(const long long* __restrict__ tile_c1,
                        const long long* __restrict__ tile_c2, int64_t tiles, long long k,
                        int tie_mode, const Ctl* ctl, long long* __restrict__ tile_off,
                        long long* __restrict__ tile_c2_before) {
  using Scan = cub::BlockScan<long long, 1024>;
  __shared__ typename Scan::TempStorage tmp;
  const long long ties = tie_mode ? k - static_cast<long long>(ctl->count) : 0;
  long long carry_sel = 0;
  long long carry_c2 = 0;
  for (int64_t base = 0; base < tiles; base += 1024) {
    const int64_t j = base + threadIdx.x;
    const long long c1 = j < tiles ? tile_c1[j] : 0;
    const long long c2 = j < tiles ? tile_c2[j] : 0;
    long long c2_before = 0;
    long long c2_total = 0;
    Scan(tmp).ExclusiveSum(c2, c2_before, c2_total);
    __syncthreads();
    c2_before += carry_c2;
    long long left = ties - c2_before;
    left = left < 0 ? 0 : (left > c2 ? c2 : left);
    long long off = 0;
    long long sel_total = 0;
    Scan(tmp).ExclusiveSum(c1 + left, off, sel_total);
    __syncthreads();
    if (j < tiles) {
      tile_off[j] = carry_sel + off;
      tile_c2_before[j] = c2_before;
    }
    carry_sel += sel_total;
    carry_c2 += c2_total;
  }
}

// Exclusive prefix sums of the tile counts, one block: the counts are read coalesced into shared
// memory, each thread sums a run of consecutive tiles there, one block scan, and each thread
// writes its run's offsets. Up to kScanTiles tiles (n up to 41M elements); counts fit in int.
constexpr int64_t kScanTiles = 10240;
__global__ void __launch_bounds__(1024)
    tile_scan_kernel(const long long* __restrict__ counts, int64_t tiles,
                     long long* __restrict__ offsets) {
  __shared__ int c[kScanTiles];
  using Scan = cub::BlockScan<int, 1024>;
  __shared__ typename Scan::TempStorage tmp;
  for (int64_t j = threadIdx.x; j < tiles; j += 1024) c[j] = static_cast<int>(counts[j]);
  __syncthreads();
  const int64_t per = (tiles + 1023) / 1024;
  const int64_t b = threadIdx.x * per;
  const int64_t e = b + per < tiles ? b + per : tiles;
  int sum = 0;
  for (int64_t j = b; j < e; ++j) sum += c[j];
  int before = 0;
  Scan(tmp).ExclusiveSum(sum, before);
  for (int64_t j = b; j < e; ++j) {
    offsets[j] = before;
    before += c[j];
  }
}

// Pass 2: writes, in order, the selected elements' indices (idx_map[i], or i) and values
// x[index] at their tile's offset, the first `limit` only.
template <Mode kMode>
__global__ void __launch_bounds__(kThreads)
    tile_write_kernel(const float* __restrict__ a, int64_t m, const int64_t* __restrict__ idx_map,
                      const float* __restrict__ x, const Ctl* ctl, int slot, long long k,
                      int tie_mode, const long long* __restrict__ tile_off,
                      const long long* __restrict__ tile_c2_before, long long limit,
                      int64_t* __restrict__ out_idx, float* __restrict__ out_val) {
  const int64_t begin = int64_t{blockIdx.x} * kTile;
  if (begin >= m) return;  // uniform across the block
  using Load = cub::BlockLoad<float, kThreads, kItems, cub::BLOCK_LOAD_WARP_TRANSPOSE>;
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ union {
    typename Load::TempStorage load;
    typename Scan::TempStorage scan;
  } tmp;
  const int valid = m - begin < kTile ? static_cast<int>(m - begin) : static_cast<int>(kTile);
  float items[kItems];
  Load(tmp.load).Load(a + begin, items, valid, 0.0f);
  __syncthreads();
  const float thr = ctl->thr;
  const uint32_t t = ctl->result[slot];
  const long long ties = tie_mode ? k - static_cast<long long>(ctl->count) : 0;
  // Blocked arrangement: thread t holds elements begin + kItems * t + j, so scans in thread order
  // are scans in index order.
  int cls[kItems];
  int n2 = 0;
#pragma unroll
  for (int j = 0; j < kItems; ++j) {
    const bool in = kItems * static_cast<int>(threadIdx.x) + j < valid;
    cls[j] = in ? classify<kMode>(items[j], thr, t) : 0;
    n2 += cls[j] == 2;
  }
  int r2 = 0;
  Scan(tmp.scan).ExclusiveSum(n2, r2);
  __syncthreads();
  long long c2_rank = tile_c2_before[blockIdx.x] + r2;
  int nsel = 0;
  bool sel[kItems];
#pragma unroll
  for (int j = 0; j < kItems; ++j) {
    sel[j] = cls[j] == 1;
    if (cls[j] == 2) {
      sel[j] = c2_rank < ties;
      ++c2_rank;
    }
    nsel += sel[j];
  }
  int rank = 0;
  Scan(tmp.scan).ExclusiveSum(nsel, rank);
  long long pos = tile_off[blockIdx.x] + rank;
#pragma unroll
  for (int j = 0; j < kItems; ++j) {
    if (!sel[j]) continue;
    if (pos < limit) {
      const int64_t i = begin + kItems * static_cast<int64_t>(threadIdx.x) + j;
      const int64_t index = idx_map != nullptr ? idx_map[i] : i;
      out_idx[pos] = index;
      out_val[pos] = x[index];
    }
    ++pos;
  }
}

// Sets the threshold of the next kGe passes (unless use_value is 0) and clears the counters they
// add to; `pass` also clears the overflow flag (before a stash pass).
__global__ void set_threshold_kernel(Ctl* ctl, float thr, int use_value, int pass) {
  if (use_value) ctl->thr = thr;
  for (int g = 0; g < kGroups; ++g) ctl->groups[g] = 0;
  ctl->count = 0;
  ctl->aux = 0;
  if (pass) ctl->overflow = 0;
}

// Clears the counters of a selection (the provisional threshold stays).
__global__ void reset_step_kernel(Ctl* ctl) {
  for (int g = 0; g < kGroups; ++g) ctl->groups[g] = 0;
  ctl->floored = 0;
  ctl->overflow = 0;
  ctl->nan_first = kNoNan;
  ctl->count = 0;
  ctl->aux = 0;
  ctl->list_hits = 0;
}

}  // namespace terse::dgc_cuda

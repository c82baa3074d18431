#pragma once

// The GPU passes of CudaDgcSelector: a radix select of the k-th largest |a|, tile counts and an
// order-keeping compaction by a threshold (with a budget for ties at the k-th value), the
// momentum correction that lists candidates, and the strided sample. Private to terse_dgc.

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
  uint32_t prefix[2];            // radix select state, by slot: bits fixed so far,
  long long krem[2];             // the rank still to find among the keys matching them (0: idle)
  uint32_t mask;                 // and which bits those are
  unsigned int done_blocks;
  long long groups[kGroups];  // the last count pass's counts, summed per group of tiles
};

__device__ __forceinline__ uint32_t mag_bits(float x) { return __float_as_uint(x) & 0x7fffffffu; }

// Starts radix selects of the k0-th and the k1-th largest |a| (a k of 0: none), and resets the
// NaN watch when asked; `counts` also clears the counters of a selection (select()'s first
// kernel).
__global__ void radix_init_kernel(Ctl* ctl, long long k0, long long k1, int reset_nan, int counts) {
  ctl->prefix[0] = ctl->prefix[1] = 0;
  ctl->mask = 0;
  ctl->krem[0] = k0;
  ctl->krem[1] = k1;
  ctl->done_blocks = 0;
  if (reset_nan) ctl->nan_first = kNoNan;
  for (int g = 0; g < kGroups; ++g) ctl->groups[g] = 0;
  if (counts) {
    ctl->overflow = 0;
    ctl->count = 0;
    ctl->aux = 0;
    ctl->list_hits = 0;
  }
}

// The elements of a radix pass: a[start + i * stride] for i in [0, m). With `gather`, the first
// pass also writes |a[...]| to gather[i] (the strided sample) for the later passes to read, and,
// with count_at, adds the number of them at or above *count_at to ctl->aux.
struct RadixInput {
  const float* a;
  int64_t m;
  int64_t start;
  int64_t stride;
  float* gather;
  const float* count_at;
};

// One digit of both radix selects: histograms of the digit at `shift` over the keys that match
// each select's bits so far; the last block to finish picks each select's digit (the one holding
// its krem-th largest key) and clears the histograms for the next pass. The last pass stores the
// keys in result[0] (and its float in thr) and result[1]. check_nan records the lowest NaN index.
__global__ void __launch_bounds__(kThreads)
    radix_pass_kernel(RadixInput in, int shift, uint32_t digit_mask, Ctl* ctl, unsigned int* hist,
                      int last, int check_nan) {
  __shared__ unsigned int sh[2][kBins];
  __shared__ bool am_last;
  const int bins = ctl->krem[1] > 0 ? 2 * kBins : kBins;  // slot 1 idle: its bins stay 0
  for (int i = threadIdx.x; i < bins; i += kThreads) sh[i / kBins][i % kBins] = 0;
  __syncthreads();
  const uint32_t prefix0 = ctl->prefix[0];
  const uint32_t prefix1 = ctl->prefix[1];
  const bool on0 = ctl->krem[0] > 0;
  const bool on1 = ctl->krem[1] > 0;
  const uint32_t mask = ctl->mask;
  const int lane = static_cast<int>(threadIdx.x & 31u);
  const float count_at = in.count_at != nullptr ? *in.count_at : 0.0f;
  int counted = 0;
  // Chunks of kRadixItems elements per thread, striped; each chunk's loads are all issued before
  // any is used (the passes over a sample are latency bound). Lanes with the same digit add once
  // per warp (__match_any_sync): magnitudes crowd into a few digits, and one shared atomic per
  // lane would serialise on them.
  constexpr int kRadixItems = 2;
  const int64_t chunk = int64_t{kThreads} * kRadixItems;
  for (int64_t c0 = int64_t{blockIdx.x} * chunk; c0 < in.m; c0 += int64_t{gridDim.x} * chunk) {
    float xs[kRadixItems];
#pragma unroll
    for (int j = 0; j < kRadixItems; ++j) {
      const int64_t i = c0 + int64_t{j} * kThreads + threadIdx.x;
      xs[j] = i < in.m ? in.a[in.start + i * in.stride] : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < kRadixItems; ++j) {
      const int64_t i = c0 + int64_t{j} * kThreads + threadIdx.x;
      uint32_t bin0 = 0xffffffffu;
      uint32_t bin1 = 0xffffffffu;
      if (i < in.m) {
        const float x = xs[j];
        if (check_nan && isnan(x)) {
          atomicMin(&ctl->nan_first, static_cast<unsigned long long>(in.start + i * in.stride));
        }
        if (in.gather != nullptr) in.gather[i] = fabsf(x);
        if (in.count_at != nullptr) counted += fabsf(x) >= count_at;
        const uint32_t key = mag_bits(x);
        if (on0 && (key & mask) == prefix0) bin0 = (key >> shift) & digit_mask;
        if (on1 && (key & mask) == prefix1) bin1 = (key >> shift) & digit_mask;
      }
      const unsigned peers0 = __match_any_sync(0xffffffffu, bin0);
      if (bin0 != 0xffffffffu && lane == __ffs(peers0) - 1) {
        atomicAdd(&sh[0][bin0], static_cast<unsigned int>(__popc(peers0)));
      }
      if (on1) {
        const unsigned peers1 = __match_any_sync(0xffffffffu, bin1);
        if (bin1 != 0xffffffffu && lane == __ffs(peers1) - 1) {
          atomicAdd(&sh[1][bin1], static_cast<unsigned int>(__popc(peers1)));
        }
      }
    }
  }
  if (in.count_at != nullptr) {
    using Reduce = cub::BlockReduce<int, kThreads>;
    __shared__ typename Reduce::TempStorage red;
    const int total = Reduce(red).Sum(counted);
    if (threadIdx.x == 0 && total != 0) {
      atomicAdd(&ctl->aux, static_cast<unsigned long long>(total));
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < bins; i += kThreads) {
    const unsigned int c = sh[i / kBins][i % kBins];
    if (c != 0) atomicAdd(&hist[i], c);
  }
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) am_last = atomicAdd(&ctl->done_blocks, 1u) == gridDim.x - 1;
  __syncthreads();
  if (!am_last) return;
  __threadfence();
  // Thread t owns the 8 bins 2047 - 8t - j (j = 0..7): descending digits in thread order.
  using Scan = cub::BlockScan<long long, kThreads>;
  __shared__ typename Scan::TempStorage scan_tmp;
  constexpr int kPer = kBins / kThreads;
  for (int slot = 0; slot < 2; ++slot) {
    const long long krem = __ldcg(&ctl->krem[slot]);
    if (krem <= 0) continue;  // uniform across the block
    long long c[kPer];
    long long mine = 0;
    for (int j = 0; j < kPer; ++j) {
      const int b = kBins - 1 - kPer * static_cast<int>(threadIdx.x) - j;
      c[j] = b <= static_cast<int>(digit_mask)
                 ? static_cast<long long>(__ldcg(&hist[slot * kBins + b]))
                 : 0;
      mine += c[j];
    }
    long long before = 0;
    Scan(scan_tmp).ExclusiveSum(mine, before);
    __syncthreads();
    for (int j = 0; j < kPer; ++j) {
      if (before < krem && krem <= before + c[j]) {
        const uint32_t d =
            static_cast<uint32_t>(kBins - 1 - kPer * static_cast<int>(threadIdx.x) - j);
        const uint32_t p = __ldcg(&ctl->prefix[slot]) | (d << shift);
        ctl->prefix[slot] = p;
        ctl->krem[slot] = krem - before;
        if (last) {
          ctl->result[slot] = p;
          if (slot == 0) ctl->thr = __uint_as_float(p);
        }
      }
      before += c[j];
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    ctl->mask = __ldcg(&ctl->mask) | (digit_mask << shift);
    ctl->done_blocks = 0;
  }
  for (int i = threadIdx.x; i < bins; i += kThreads) hist[i] = 0;
}

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
  ctl->overflow = 0;
  ctl->nan_first = kNoNan;
  ctl->count = 0;
  ctl->aux = 0;
  ctl->list_hits = 0;
}

}  // namespace terse::dgc_cuda

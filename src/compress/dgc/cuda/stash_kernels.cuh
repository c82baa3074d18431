#pragma once

// The tile stash: one pass over x (or DgcMemory::step's momentum correction, which writes V and
// reads it once) that counts, per tile of kTile elements, the elements with |x| >= t and keeps
// the first S of them, in index order, as 16-bit offsets in the tile's slots. Later thresholds at
// or above t then filter the slots instead of reading x again, and the ordered compaction is a
// scan over per-tile counts, not over x. A tile with more than S hits sets ctl->overflow (its
// count stays exact), and the caller falls back to passes over x. Private to terse_dgc.

#include <cuda_runtime.h>

#include <cstdint>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "select_kernels.cuh"

namespace terse::dgc_cuda {

// The stash: per tile, `slots` entries of (16-bit offset in the tile, the element's value), so
// that counting and writing the stashed elements read the stash only, not x at scattered places.
struct Stash {
  uint16_t* off;
  float* val;
  int slots;
};

// Momentum factor masking fused into a compaction: V[i] = 0 (and U[i] = 0 with `both`) at every
// index written; v null: none.
struct Masking {
  float* u;
  float* v;
  int both;
};

// Where a pass also writes the strided sample of |x| (start, stride: dgc_sample_start and the
// plan's stride); out null: no sample.
struct SampleOut {
  float* out;
  int64_t start;
  int64_t stride;
};

// DgcMemory::compensate's arithmetic for one element (built with -fmad=false: the CPU's bits).
template <bool kNesterov>
__device__ __forceinline__ float correct(float& u, float& v, float g, float m) {
  const float ui = kNesterov ? m * (u + g) : m * u + g;
  const float vi = v + (kNesterov ? ui + g : ui);
  u = ui;
  v = vi;
  return vi;
}

// Block b: tile b, in 4 rounds of a group of 4 consecutive elements per thread (float4 when
// kVec: every pointer 16-byte aligned). kCompensate: U = mU + g, V += U first (Nesterov as the
// CPU), and the stash is of the new V. The threshold is *thr (ctl->thr or ctl->hint); with
// `positive_only`, a threshold that is not a positive finite number stashes nothing (step()'s
// first step has no provisional threshold). The tile counts are added to *counter (and, with
// add_groups, to ctl->groups).
template <bool kCompensate, bool kNesterov, bool kVec>
__global__ void __launch_bounds__(kThreads)
    stash_pass_kernel(float* __restrict__ u, float* __restrict__ v, const float* __restrict__ g,
                      int64_t n, float m, const float* thr, int positive_only, Ctl* ctl,
                      unsigned long long* counter, int add_groups, Stash stash,
                      long long* __restrict__ tile_hits, long long* __restrict__ tile_c1,
                      SampleOut sample) {
  const int slots = stash.slots;
  const int64_t base = int64_t{blockIdx.x} * kTile;
  const float t = *thr;
  const bool stashing = !positive_only || (t > 0.0f && isfinite(t));
  uint16_t* slot = stash.off + int64_t{blockIdx.x} * slots;
  float* sval = stash.val + int64_t{blockIdx.x} * slots;
  // All loads and stores first, with no barrier between them, so every round's memory accesses
  // are in flight together; then the ordered stash.
  constexpr int kRounds = kItems / 4;
  float val[kRounds][4];
  bool in[kRounds][4];
#pragma unroll
  for (int j = 0; j < kRounds; ++j) {
    const int64_t i0 = base + 4 * (int64_t{j} * kThreads + threadIdx.x);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      val[j][e] = 0.0f;
      in[j][e] = false;
    }
    if (kVec && i0 + 4 <= n) {
      if constexpr (kCompensate) {
        float4 uu = *reinterpret_cast<const float4*>(u + i0);
        float4 vv = *reinterpret_cast<const float4*>(v + i0);
        const float4 gg = *reinterpret_cast<const float4*>(g + i0);
        val[j][0] = correct<kNesterov>(uu.x, vv.x, gg.x, m);
        val[j][1] = correct<kNesterov>(uu.y, vv.y, gg.y, m);
        val[j][2] = correct<kNesterov>(uu.z, vv.z, gg.z, m);
        val[j][3] = correct<kNesterov>(uu.w, vv.w, gg.w, m);
        *reinterpret_cast<float4*>(u + i0) = uu;
        *reinterpret_cast<float4*>(v + i0) = vv;
      } else {
        const float4 vv = *reinterpret_cast<const float4*>(v + i0);
        val[j][0] = vv.x;
        val[j][1] = vv.y;
        val[j][2] = vv.z;
        val[j][3] = vv.w;
      }
      in[j][0] = in[j][1] = in[j][2] = in[j][3] = true;
    } else {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t i = i0 + e;
        if (i >= n) break;
        if constexpr (kCompensate) {
          float uu = u[i];
          float vv = v[i];
          val[j][e] = correct<kNesterov>(uu, vv, g[i], m);
          u[i] = uu;
          v[i] = vv;
        } else {
          val[j][e] = v[i];
        }
        in[j][e] = true;
      }
    }
  }
  // The tile's order is (round, warp, lane, element): each lane's rank in its warp from three
  // ballots of the bits of its hit count (0 to 4), each warp's count per round in shared memory,
  // and one barrier for the offsets of all of them.
  constexpr int kWarps = kThreads / 32;
  __shared__ int warp_hits[kRounds][kWarps];
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int lane = static_cast<int>(threadIdx.x & 31u);
  const unsigned below = (1u << lane) - 1u;
  bool hit[kRounds][4];
  int rank[kRounds];
#pragma unroll
  for (int j = 0; j < kRounds; ++j) {
    int hits = 0;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      hit[j][e] = stashing && in[j][e] && fabsf(val[j][e]) >= t;
      hits += hit[j][e];
    }
    const unsigned b0 = __ballot_sync(0xffffffffu, (hits & 1) != 0);
    const unsigned b1 = __ballot_sync(0xffffffffu, (hits & 2) != 0);
    const unsigned b2 = __ballot_sync(0xffffffffu, (hits & 4) != 0);
    rank[j] = __popc(b0 & below) + 2 * __popc(b1 & below) + 4 * __popc(b2 & below);
    if (lane == 0) warp_hits[j][warp] = __popc(b0) + 2 * __popc(b1) + 4 * __popc(b2);
  }
  __syncthreads();
  int total = 0;
  int first[kRounds] = {};  // this warp's first position in the tile, by round
#pragma unroll
  for (int j = 0; j < kRounds; ++j) {
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      if (w == warp) first[j] = total;
      total += warp_hits[j][w];
    }
  }
#pragma unroll
  for (int j = 0; j < kRounds; ++j) {
    const int64_t i0 = base + 4 * (int64_t{j} * kThreads + threadIdx.x);
    int pos = first[j] + rank[j];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      if (!hit[j][e]) continue;
      if (pos < slots) {
        slot[pos] = static_cast<uint16_t>(i0 + e - base);
        sval[pos] = val[j][e];
      }
      ++pos;
    }
  }
  if (threadIdx.x == 0) {
    tile_hits[blockIdx.x] = total;
    tile_c1[blockIdx.x] = total;
    if (total != 0) {
      atomicAdd(counter, static_cast<unsigned long long>(total));
      if (add_groups && (blockIdx.x >> kGroupShift) < kGroups) {
        atomicAdd(reinterpret_cast<unsigned long long*>(&ctl->groups[blockIdx.x >> kGroupShift]),
                  static_cast<unsigned long long>(total));
      }
    }
    if (total > slots) atomicOr(&ctl->overflow, 1u);
  }
  if (sample.out != nullptr) {
    // The tile's sample positions p, p + stride, ... read back from V, which this block has just
    // written (visible after the barrier): one division per thread, none per element.
    __syncthreads();
    const int64_t end = base + kTile < n ? base + kTile : n;
    int64_t q = 0;
    if (base > sample.start) q = (base - sample.start + sample.stride - 1) / sample.stride;
    for (int64_t j = q + threadIdx.x;; j += kThreads) {
      const int64_t i = sample.start + j * sample.stride;
      if (i >= end) break;
      const float a = fabsf(v[i]);
      if (isnan(a)) atomicMin(&ctl->nan_first, static_cast<unsigned long long>(i));
      sample.out[j] = a;
    }
  }
}

// One warp per tile: the tile's stashed elements with |x| >= ctl->thr, counted into tile_c1, and
// the block's sum into ctl->count and its group (a block's tiles are in one group): one atomic per
// block, not per tile (thousands of atomics on one counter queue up behind each other). Valid
// while no tile overflowed and ctl->thr is at or above the stash's threshold.
__global__ void __launch_bounds__(kThreads)
    stash_count_kernel(int64_t tiles, Ctl* ctl, Stash stash,
                       const long long* __restrict__ tile_hits, long long* __restrict__ tile_c1) {
  static_assert((int64_t{1} << kGroupShift) % (kThreads / 32) == 0,
                "a block's tiles must lie in one group");
  __shared__ int warp_count[kThreads / 32];
  const int slots = stash.slots;
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int64_t tile = int64_t{blockIdx.x} * (kThreads / 32) + warp;
  const int lane = static_cast<int>(threadIdx.x & 31u);
  int cnt = 0;
  if (tile < tiles) {  // whole warps
    const long long hits = tile_hits[tile];
    const int c = hits < slots ? static_cast<int>(hits) : slots;
    const float t = ctl->thr;
    const float* sval = stash.val + tile * slots;
#pragma unroll 4
    for (int r = lane; r < c; r += 32) cnt += fabsf(sval[r]) >= t;
    for (int o = 16; o > 0; o /= 2) cnt += __shfl_down_sync(0xffffffffu, cnt, o);
    if (lane == 0) tile_c1[tile] = cnt;
  }
  if (lane == 0) warp_count[warp] = cnt;
  __syncthreads();
  if (threadIdx.x == 0) {
    long long sum = 0;
    for (int w = 0; w < kThreads / 32; ++w) sum += warp_count[w];
    if (sum != 0) {
      atomicAdd(&ctl->count, static_cast<unsigned long long>(sum));
      const int64_t group = (int64_t{blockIdx.x} * (kThreads / 32)) >> kGroupShift;
      if (group < kGroups) {
        atomicAdd(reinterpret_cast<unsigned long long*>(&ctl->groups[group]),
                  static_cast<unsigned long long>(sum));
      }
    }
  }
}

// One warp per tile: the stashed elements with |x| >= ctl->thr, in index order, at the tile's
// output offset; the first `limit` (masked in U and V with mk). The offsets come from tile_off (a
// scan of tile_c1) or, when it is null, from the group sums: each block adds the groups before its
// own and its group's tiles before its first (its 8 tiles are in one group).
__global__ void __launch_bounds__(kThreads)
    stash_write_kernel(int64_t tiles, const Ctl* ctl, Stash stash,
                       const long long* __restrict__ tile_hits,
                       const long long* __restrict__ tile_c1,
                       const long long* __restrict__ tile_off, long long limit,
                       int64_t* __restrict__ out_idx, float* __restrict__ out_val, Masking mk) {
  constexpr int kWarps = kThreads / 32;
  const int64_t first = int64_t{blockIdx.x} * kWarps;
  const int warp = static_cast<int>(threadIdx.x / 32);
  __shared__ long long block_base;
  if (tile_off == nullptr) {
    const int64_t g = first >> kGroupShift;
    long long part = 0;
    for (int64_t j = (g << kGroupShift) + threadIdx.x; j < first; j += kThreads) {
      part += tile_c1[j];
    }
    if (threadIdx.x < g) part += ctl->groups[threadIdx.x];
    using Reduce = cub::BlockReduce<long long, kThreads>;
    __shared__ typename Reduce::TempStorage red;
    const long long sum = Reduce(red).Sum(part);
    if (threadIdx.x == 0) block_base = sum;
    __syncthreads();
  }
  const int64_t tile = first + warp;
  if (tile >= tiles) return;
  const int lane = static_cast<int>(threadIdx.x & 31u);
  long long off = 0;
  if (tile_off != nullptr) {
    off = tile_off[tile];
  } else {
    off = block_base;
    for (int w = 0; w < warp; ++w) off += tile_c1[first + w];
  }
  const int slots = stash.slots;
  const long long hits = tile_hits[tile];
  const int c = hits < slots ? static_cast<int>(hits) : slots;
  const float t = ctl->thr;
  const int64_t base = tile * kTile;
  const uint16_t* slot = stash.off + tile * slots;
  const float* sval = stash.val + tile * slots;
  for (int r0 = 0; r0 < c && off < limit; r0 += 32) {
    const int r = r0 + lane;
    int64_t i = 0;
    float xv = 0.0f;
    bool sel = false;
    if (r < c) {
      i = base + slot[r];
      xv = sval[r];
      sel = fabsf(xv) >= t;
    }
    const unsigned ballot = __ballot_sync(0xffffffffu, sel);
    const long long pos = off + __popc(ballot & ((1u << lane) - 1u));
    if (sel && pos < limit) {
      out_idx[pos] = i;
      out_val[pos] = xv;  // the stashed value: V before the masking below
      if (mk.v != nullptr) {
        mk.v[i] = 0.0f;
        if (mk.both) mk.u[i] = 0.0f;
      }
    }
    off += __popc(ballot);
  }
}

// Momentum factor masking: V[i] = 0 (and U[i] = 0 with `both`) at the selected indices.
__global__ void mask_kernel(float* __restrict__ u, float* __restrict__ v,
                            const int64_t* __restrict__ idx, int64_t count, int both) {
  const int64_t j = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (j >= count) return;
  const int64_t i = idx[j];
  v[i] = 0.0f;
  if (both) u[i] = 0.0f;
}

// g *= c (local gradient clipping's scale).
__global__ void scale_kernel(float* __restrict__ g, int64_t n, float c) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride) g[i] *= c;
}

// step()'s next provisional threshold from the radix select's slot 1, or 0.
__global__ void set_hint_kernel(Ctl* ctl, int from_slot1) {
  ctl->hint = from_slot1 ? __uint_as_float(ctl->result[1]) : 0.0f;
}

}  // namespace terse::dgc_cuda

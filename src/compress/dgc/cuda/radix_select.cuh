#pragma once

// The radix select of CudaDgcSelector in one cooperative launch: the k0-th and the k1-th largest
// |a| over a strided input, by digits of 11, 11 and 10 bits of |a|'s bits. Pass 0 histograms the
// first digit of every key (per block in shared memory, then into a global histogram); the last
// block to arrive picks the digit and publishes it, and the others wait for it (arrive_and_pick).
// DGC's ranks lie far in the tail, so a picked digit holds few keys (about 2K of the 256K-element
// sample of a 25.6M gradient): each block appends its own to a candidate list, and the last block
// to finish picks the other two digits over the candidates alone, in registers and shared memory.
// When a picked digit holds more than kCandidates keys (many equal magnitudes, or the exact top-k
// of a large k), passes 1 and 2 run over every key as pass 0 did, with the same barrier after each.
// Why: the select is latency bound, not bandwidth bound. On an H100, one launch per pass took
// 35 us at 25.6M; three passes in one launch with a grid barrier and an all-block pick after each,
// 27 us for one rank and 45 us for two (every block reading the same histogram lines); this, 17
// and 25 us. Private to terse_dgc.

#include <cuda_runtime.h>

#include <cstdint>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "select_kernels.cuh"

namespace terse::dgc_cuda {

constexpr int kRadixPasses = 3;
constexpr int kCandItems = 16;                      // candidate keys per thread of the last block
constexpr int kCandidates = kThreads * kCandItems;  // the most keys in a picked digit, by slot

// Global scratch of the select. Between launches the histograms, `aux`, the candidate counts and
// `arrived` are 0 and `nan_first` is kNoNan: the block that reads them clears them.
struct RadixScratch {
  unsigned int hist[2][kBins];  // the current pass's histogram, by slot
  unsigned long long aux;
  unsigned long long nan_first;
  unsigned int cand_count[2];  // keys appended to cand, by slot
  unsigned int arrived;        // blocks at the current barrier
  unsigned int published;      // the tag of the last digits published
  uint32_t prefix[2];          // the digits published, as RadixBlock's
  long long krem[2];
  long long in_digit[2];
  uint32_t cand[2][kCandidates];
};

// The elements of a select: a[start + i * stride] for i in [0, m). With `gather`, pass 0 also
// writes |a[...]| to gather[i] (the strided sample) for the later passes to read, and, with
// count_at, counts those at or above *count_at into ctl->aux.
struct RadixInput {
  const float* a;
  int64_t m;
  int64_t start;
  int64_t stride;
  float* gather;
  const float* count_at;
};

struct RadixJob {
  RadixInput in;
  long long k0;   // rank of slot 0 (into ctl->result[0] and ctl->thr); 0: idle
  long long k1;   // rank of slot 1 (into ctl->result[1]); 0: idle
  int check_nan;  // the lowest index whose |a| is NaN into ctl->nan_first
  int reset_nan;  // ctl->nan_first is this launch's (else the lower of it and this launch's)
  int counts;     // clears ctl->count, overflow and list_hits and sets aux to this launch's count
  unsigned int tag;  // differs from the last launch's: tag + p marks pass p's published digits
};

__device__ __forceinline__ int digit_shift(int p) { return p == 0 ? 21 : (p == 1 ? 10 : 0); }
__device__ __forceinline__ uint32_t digit_mask(int p) { return p == 2 ? 0x3ffu : 0x7ffu; }

// A block's state of the select, in shared memory.
struct RadixBlock {
  unsigned int hist[2][kBins];  // this block's histogram of the current digit, by slot
  uint32_t prefix[2];           // the bits fixed so far, by slot
  long long krem[2];            // the rank still to find among the keys that match them
  long long in_digit[2];        // the keys in the digit picked last
  bool last;                    // this block finished the candidate appends last
};

// Adds a digit to a block histogram (a bin of ~0u: nothing). Lanes with the same digit add once
// per warp (__match_any_sync): magnitudes crowd into a few digits, and one shared atomic per lane
// would serialise on them. Every lane of the warp calls it.
__device__ __forceinline__ void add_digit(unsigned int* hist, uint32_t bin, int lane) {
  const unsigned peers = __match_any_sync(0xffffffffu, bin);
  if (bin != 0xffffffffu && lane == __ffs(peers) - 1) {
    atomicAdd(&hist[bin], static_cast<unsigned int>(__popc(peers)));
  }
}

// The digit at pass p of `key` when its bits so far match `prefix`, else ~0u.
__device__ __forceinline__ uint32_t digit_of(uint32_t key, int p, uint32_t fixed, uint32_t prefix,
                                             bool valid) {
  return valid && (key & fixed) == prefix ? (key >> digit_shift(p)) & digit_mask(p) : 0xffffffffu;
}

// Every thread of a block: the digit of `slot` at pass p from a histogram (global: read through
// L2; or the block's own), the one holding its krem-th largest key, into prefix, krem and
// in_digit. Thread t owns the 8 bins kBins - 1 - 8t - j (j = 0..7): descending digits in thread
// order. The caller syncs the block after it.
template <bool kGlobal, typename Scan>
__device__ void pick_digit(const unsigned int* hist, int p, RadixBlock& b, int slot,
                           typename Scan::TempStorage& tmp) {
  constexpr int kPer = kBins / kThreads;
  const long long want = b.krem[slot];  // read before any thread updates it
  const auto dmask = static_cast<int>(digit_mask(p));
  long long c[kPer];
  long long mine = 0;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int bin = kBins - 1 - kPer * static_cast<int>(threadIdx.x) - j;
    unsigned int v = 0;
    if (bin <= dmask) v = kGlobal ? __ldcg(&hist[bin]) : hist[bin];
    c[j] = v;
    mine += c[j];
  }
  long long before = 0;
  Scan(tmp).ExclusiveSum(mine, before);
  __syncthreads();  // every thread has read krem and the scan storage is free again
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    if (before < want && want <= before + c[j]) {
      const auto d = static_cast<uint32_t>(kBins - 1 - kPer * static_cast<int>(threadIdx.x) - j);
      b.prefix[slot] |= d << digit_shift(p);
      b.krem[slot] = want - before;
      b.in_digit[slot] = c[j];
    }
    before += c[j];
  }
}

// Whether this block is the last of the grid to get here: the writes every block made before it
// are visible to the last one after it. Every thread of the block calls it.
__device__ __forceinline__ bool last_to_arrive(RadixScratch* s, RadixBlock& b) {
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) b.last = atomicAdd(&s->arrived, 1u) == gridDim.x - 1;
  __syncthreads();
  if (b.last) __threadfence();
  return b.last;
}

// The barrier after a pass: every block has added its histogram to s->hist; the last block to
// arrive picks the digits there (only it reads the global histogram: when every block read it,
// their loads of the same few lines queued for microseconds), clears it, and publishes the
// digits; the others wait for them. `publish` also hands over the NaN position and the count of
// pass 0. Returns whether this block was the last.
template <typename Scan>
__device__ bool arrive_and_pick(RadixScratch* s, RadixBlock& b, int p, unsigned int tag, bool on0,
                                bool on1, typename Scan::TempStorage& tmp) {
  if (last_to_arrive(s, b)) {
    if (on0) pick_digit<true, Scan>(s->hist[0], p, b, 0, tmp);
    __syncthreads();
    if (on1) pick_digit<true, Scan>(s->hist[1], p, b, 1, tmp);
    __syncthreads();
    for (int i = threadIdx.x; i < 2 * kBins; i += kThreads) (&s->hist[0][0])[i] = 0;
    if (threadIdx.x == 0) {
      s->arrived = 0;
      for (int slot = 0; slot < 2; ++slot) {
        s->prefix[slot] = b.prefix[slot];
        s->krem[slot] = b.krem[slot];
        s->in_digit[slot] = b.in_digit[slot];
      }
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) atomicExch(&s->published, tag + static_cast<unsigned int>(p));
  } else {
    if (threadIdx.x == 0) {
      const volatile unsigned int* flag = &s->published;
      while (*flag != tag + static_cast<unsigned int>(p)) __nanosleep(32);
      __threadfence();
      for (int slot = 0; slot < 2; ++slot) {
        b.prefix[slot] = __ldcg(&s->prefix[slot]);
        b.krem[slot] = __ldcg(&s->krem[slot]);
        b.in_digit[slot] = __ldcg(&s->in_digit[slot]);
      }
    }
    __syncthreads();
  }
  return b.last;
}

// Appends the matching lanes' keys to a candidate list (the first kCandidates; *counter counts
// them all), one atomic per warp. Every lane of the warp calls it.
__device__ __forceinline__ void append_key(uint32_t* list, unsigned int* counter, bool match,
                                           uint32_t key, int lane) {
  const unsigned ballot = __ballot_sync(0xffffffffu, match);
  if (ballot == 0) return;  // uniform across the warp
  const int leader = __ffs(ballot) - 1;
  unsigned int base = 0;
  if (lane == leader) base = atomicAdd(counter, static_cast<unsigned int>(__popc(ballot)));
  base = __shfl_sync(0xffffffffu, base, leader);
  const unsigned int pos = base + static_cast<unsigned int>(__popc(ballot & ((1u << lane) - 1u)));
  if (match && pos < kCandidates) list[pos] = key;
}

// The last block of a select: passes p0 to 2 of each active slot over its candidate keys alone
// (count[slot] of list[slot], at most kCandidates), kCandItems per thread in registers, the
// histograms in shared memory; `fixed` masks the bits already in b.prefix. The picks land in
// b.prefix. Every thread of the block calls it.
template <typename Scan>
__device__ void finish_on_candidates(const uint32_t* const list[2], const int count[2], int p0,
                                     uint32_t fixed, bool on0, bool on1, RadixBlock& b,
                                     typename Scan::TempStorage& tmp) {
  const int lane = static_cast<int>(threadIdx.x & 31u);
  const int bins = on1 ? 2 * kBins : kBins;
  uint32_t keys[2][kCandItems];
#pragma unroll
  for (int slot = 0; slot < 2; ++slot) {
#pragma unroll
    for (int j = 0; j < kCandItems; ++j) {
      const int i = j * kThreads + static_cast<int>(threadIdx.x);
      keys[slot][j] = i < count[slot] ? __ldcg(&list[slot][i]) : 0u;
    }
  }
  for (int p = p0; p < kRadixPasses; ++p) {
    for (int i = threadIdx.x; i < bins; i += kThreads) b.hist[i / kBins][i % kBins] = 0;
    __syncthreads();
#pragma unroll
    for (int slot = 0; slot < 2; ++slot) {
      if (!(slot == 0 ? on0 : on1)) continue;  // uniform
      const uint32_t prefix = b.prefix[slot];
#pragma unroll
      for (int j = 0; j < kCandItems; ++j) {
        if (j * kThreads >= count[slot]) break;  // uniform
        const int i = j * kThreads + static_cast<int>(threadIdx.x);
        add_digit(b.hist[slot], digit_of(keys[slot][j], p, fixed, prefix, i < count[slot]), lane);
      }
    }
    __syncthreads();
    if (on0) pick_digit<false, Scan>(b.hist[0], p, b, 0, tmp);
    __syncthreads();
    if (on1) pick_digit<false, Scan>(b.hist[1], p, b, 1, tmp);
    __syncthreads();
    fixed |= digit_mask(p) << digit_shift(p);
  }
}

// Launched with cudaLaunchCooperativeKernel: every block resident, as the waits need.
__global__ void __launch_bounds__(kThreads)
    radix_select_kernel(RadixJob job, Ctl* ctl, RadixScratch* s) {
  __shared__ RadixBlock b;
  using Scan = cub::BlockScan<long long, kThreads>;
  using Reduce = cub::BlockReduce<int, kThreads>;
  __shared__ union {
    typename Scan::TempStorage scan;
    typename Reduce::TempStorage reduce;
  } tmp;
  const bool on0 = job.k0 > 0;
  const bool on1 = job.k1 > 0;  // uniform: the warps' __match_any_sync run together
  if (threadIdx.x < 2) {
    b.prefix[threadIdx.x] = 0;
    b.krem[threadIdx.x] = threadIdx.x == 0 ? job.k0 : job.k1;
    b.in_digit[threadIdx.x] = 0;
  }
  const int lane = static_cast<int>(threadIdx.x & 31u);
  const int bins = on1 ? 2 * kBins : kBins;  // slot 1 idle: its bins stay 0
  const int64_t m = job.in.m;
  const int64_t gthreads = int64_t{gridDim.x} * kThreads;
  // Pass p over every key into the block histograms, then into the global one; pass 0 also
  // gathers, counts and watches for NaN. Chunks of kChunk elements per thread, striped; each
  // chunk's loads are issued before any is used (the passes are latency bound).
  auto pass = [&](int p, uint32_t fixed) {
    for (int i = threadIdx.x; i < bins; i += kThreads) b.hist[i / kBins][i % kBins] = 0;
    __syncthreads();
    const bool first = p == 0;
    const bool own = first || job.in.gather == nullptr;
    const float* a = own ? job.in.a : job.in.gather;
    const int64_t start = own ? job.in.start : 0;
    const int64_t stride = own ? job.in.stride : 1;
    const bool counting = first && job.in.count_at != nullptr;
    const float count_at = counting ? *job.in.count_at : 0.0f;
    const uint32_t prefix0 = b.prefix[0];
    const uint32_t prefix1 = b.prefix[1];
    int counted = 0;
    constexpr int kChunk = 4;
    for (int64_t c0 = int64_t{blockIdx.x} * kThreads * kChunk; c0 < m; c0 += gthreads * kChunk) {
      float xs[kChunk];
#pragma unroll
      for (int j = 0; j < kChunk; ++j) {
        const int64_t i = c0 + int64_t{j} * kThreads + threadIdx.x;
        xs[j] = i < m ? a[start + i * stride] : 0.0f;
      }
#pragma unroll
      for (int j = 0; j < kChunk; ++j) {
        const int64_t i = c0 + int64_t{j} * kThreads + threadIdx.x;
        const bool valid = i < m;
        if (valid && first) {
          if (job.check_nan && isnan(xs[j])) {
            atomicMin(&s->nan_first, static_cast<unsigned long long>(start + i * stride));
          }
          if (job.in.gather != nullptr) job.in.gather[i] = fabsf(xs[j]);
          if (counting) counted += fabsf(xs[j]) >= count_at;
        }
        const uint32_t key = mag_bits(xs[j]);
        if (on0) add_digit(b.hist[0], digit_of(key, p, fixed, prefix0, valid), lane);
        if (on1) add_digit(b.hist[1], digit_of(key, p, fixed, prefix1, valid), lane);
      }
    }
    if (counting) {
      const int total = Reduce(tmp.reduce).Sum(counted);
      if (threadIdx.x == 0 && total != 0) {
        atomicAdd(&s->aux, static_cast<unsigned long long>(total));
      }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < bins; i += kThreads) {
      const unsigned int c = b.hist[i / kBins][i % kBins];
      if (c != 0) atomicAdd(&s->hist[i / kBins][i % kBins], c);
    }
  };
  auto write_results = [&] {
    if (threadIdx.x != 0) return;
    if (on0) {
      ctl->result[0] = b.prefix[0];
      ctl->thr = __uint_as_float(b.prefix[0]);
    }
    if (on1) ctl->result[1] = b.prefix[1];
  };

  pass(0, 0);
  if (arrive_and_pick<Scan>(s, b, 0, job.tag, on0, on1, tmp.scan) && threadIdx.x == 0) {
    // Every block has added its NaN position and its count: hand them over, clear the scratch.
    // (The other blocks are past the barrier, but none touches these again in this launch.)
    const unsigned long long nan = __ldcg(&s->nan_first);
    const unsigned long long aux = __ldcg(&s->aux);
    if (job.reset_nan || nan < ctl->nan_first) ctl->nan_first = nan;
    if (job.counts) {
      ctl->count = 0;
      ctl->overflow = 0;
      ctl->list_hits = 0;
      ctl->aux = aux;
    } else {
      ctl->aux += aux;
    }
    for (int g = 0; g < kGroups; ++g) ctl->groups[g] = 0;
    s->nan_first = kNoNan;
    s->aux = 0;
  }
  uint32_t fixed = digit_mask(0) << digit_shift(0);
  const bool few = (!on0 || b.in_digit[0] <= kCandidates) && (!on1 || b.in_digit[1] <= kCandidates);
  if (!few) {
    // Passes 1 and 2 over every key, the barrier after each.
    for (int p = 1; p < kRadixPasses; ++p) {
      pass(p, fixed);
      const bool picked = arrive_and_pick<Scan>(s, b, p, job.tag, on0, on1, tmp.scan);
      fixed |= digit_mask(p) << digit_shift(p);
      if (picked && p == kRadixPasses - 1) write_results();
    }
    return;
  }
  // Each block appends its keys in the picked digits to the candidate lists (one atomic per warp
  // and slot), and the last block to finish picks the other digits over those alone.
  const bool own = job.in.gather == nullptr;
  const float* a = own ? job.in.a : job.in.gather;
  const int64_t start = own ? job.in.start : 0;
  const int64_t stride = own ? job.in.stride : 1;
  constexpr int kChunk = 4;
  for (int64_t c0 = int64_t{blockIdx.x} * kThreads * kChunk; c0 < m; c0 += gthreads * kChunk) {
    uint32_t ks[kChunk];
#pragma unroll
    for (int j = 0; j < kChunk; ++j) {
      const int64_t i = c0 + int64_t{j} * kThreads + threadIdx.x;
      ks[j] = i < m ? mag_bits(a[start + i * stride]) : 0u;
    }
#pragma unroll
    for (int j = 0; j < kChunk; ++j) {
      const bool valid = c0 + int64_t{j} * kThreads + threadIdx.x < m;
#pragma unroll
      for (int slot = 0; slot < 2; ++slot) {
        if (!(slot == 0 ? on0 : on1)) continue;  // uniform
        append_key(s->cand[slot], &s->cand_count[slot], valid && (ks[j] & fixed) == b.prefix[slot],
                   ks[j], lane);
      }
    }
  }
  if (!last_to_arrive(s, b)) return;
  if (threadIdx.x == 0) {
    s->cand_count[0] = s->cand_count[1] = 0;
    s->arrived = 0;
  }
  const uint32_t* const lists[2] = {s->cand[0], s->cand[1]};
  const int counts[2] = {static_cast<int>(b.in_digit[0]), static_cast<int>(b.in_digit[1])};
  finish_on_candidates<Scan>(lists, counts, 1, fixed, on0, on1, b, tmp.scan);
  write_results();
}

}  // namespace terse::dgc_cuda

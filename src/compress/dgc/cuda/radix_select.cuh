#pragma once

// The radix select of CudaDgcSelector in one cooperative launch: the k0-th and the k1-th largest
// |a| over a strided input, three digits of 11, 11 and 10 bits. Each pass histograms the digit of
// the keys that match the bits fixed so far (per block in shared memory, then added to a global
// histogram); after a grid-wide barrier every block reads the global histogram and picks the
// same digit, so the running state stays in shared memory and no launch separates the passes.
// The passes over the 256K-element sample of a 25.6M gradient are latency bound: four launches
// with a kernel boundary between each cost about three times this one launch. Private to
// terse_dgc.

#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "select_kernels.cuh"

namespace terse::dgc_cuda {

constexpr int kRadixPasses = 3;

// Global scratch of the select. Between launches every histogram and `aux` are 0 and
// `nan_first` is kNoNan: a launch clears the histograms of its passes 1 and 2 before its first
// barrier, and those of pass 0 (and aux, nan_first) once every block has read them.
struct RadixScratch {
  unsigned int hist[kRadixPasses][2][kBins];
  unsigned long long aux;
  unsigned long long nan_first;
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
};

// Every block: the digit of `slot` from the pass's global histogram (the one holding its
// krem-th largest key), into the block's prefix and krem. Thread t owns the 8 bins
// kBins - 1 - 8t - j (j = 0..7): descending digits in thread order.
template <typename Scan>
__device__ void pick_digit(const unsigned int* hist, uint32_t digit_mask, int shift,
                           uint32_t* prefix, long long* krem, typename Scan::TempStorage& tmp) {
  constexpr int kPer = kBins / kThreads;
  const long long want = *krem;  // read before any thread updates it
  long long c[kPer];
  long long mine = 0;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int b = kBins - 1 - kPer * static_cast<int>(threadIdx.x) - j;
    c[j] = b <= static_cast<int>(digit_mask) ? static_cast<long long>(__ldcg(&hist[b])) : 0;
    mine += c[j];
  }
  long long before = 0;
  Scan(tmp).ExclusiveSum(mine, before);
  __syncthreads();  // every thread has read *krem and the scan storage is free again
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    if (before < want && want <= before + c[j]) {
      const auto d = static_cast<uint32_t>(kBins - 1 - kPer * static_cast<int>(threadIdx.x) - j);
      *prefix |= d << shift;
      *krem = want - before;
    }
    before += c[j];
  }
}

// Launched with cudaLaunchCooperativeKernel (every block resident: the barriers need it).
__global__ void __launch_bounds__(kThreads)
    radix_select_kernel(RadixJob job, Ctl* ctl, RadixScratch* scratch) {
  namespace cg = cooperative_groups;
  cg::grid_group grid = cg::this_grid();
  __shared__ unsigned int sh[2][kBins];
  __shared__ uint32_t prefix[2];
  __shared__ long long krem[2];
  using Scan = cub::BlockScan<long long, kThreads>;
  using Reduce = cub::BlockReduce<int, kThreads>;
  __shared__ union {
    typename Scan::TempStorage scan;
    typename Reduce::TempStorage reduce;
  } tmp;
  if (threadIdx.x < 2) {
    prefix[threadIdx.x] = 0;
    krem[threadIdx.x] = threadIdx.x == 0 ? job.k0 : job.k1;
  }
  const int64_t gthreads = int64_t{gridDim.x} * kThreads;
  const int64_t gtid = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  for (int64_t i = gtid; i < 2 * 2 * kBins; i += gthreads) {
    (&scratch->hist[1][0][0])[i] = 0;  // passes 1 and 2: used after the first barrier
  }
  const int lane = static_cast<int>(threadIdx.x & 31u);
  const int shifts[kRadixPasses] = {21, 10, 0};
  const uint32_t masks[kRadixPasses] = {0x7ffu, 0x7ffu, 0x3ffu};
  uint32_t fixed = 0;  // the bits the passes before have fixed
  __syncthreads();
  for (int p = 0; p < kRadixPasses; ++p) {
    const bool on0 = krem[0] > 0;
    const bool on1 = krem[1] > 0;
    const uint32_t prefix0 = prefix[0];
    const uint32_t prefix1 = prefix[1];
    const int bins = on1 ? 2 * kBins : kBins;  // slot 1 idle: its bins stay 0
    for (int i = threadIdx.x; i < bins; i += kThreads) sh[i / kBins][i % kBins] = 0;
    __syncthreads();
    const bool first = p == 0;
    const float* a = first || job.in.gather == nullptr ? job.in.a : job.in.gather;
    const int64_t start = first || job.in.gather == nullptr ? job.in.start : 0;
    const int64_t stride = first || job.in.gather == nullptr ? job.in.stride : 1;
    const bool counting = first && job.in.count_at != nullptr;
    const float count_at = counting ? *job.in.count_at : 0.0f;
    int counted = 0;
    // Chunks of kItems2 elements per thread, striped; each chunk's loads are all issued before
    // any is used (the passes are latency bound). Lanes with the same digit add once per warp
    // (__match_any_sync): magnitudes crowd into a few digits, and one shared atomic per lane
    // would serialise on them.
    constexpr int kItems2 = 2;
    const int64_t chunk = int64_t{kThreads} * kItems2;
    const int64_t m = job.in.m;
    for (int64_t c0 = int64_t{blockIdx.x} * chunk; c0 < m; c0 += int64_t{gridDim.x} * chunk) {
      float xs[kItems2];
#pragma unroll
      for (int j = 0; j < kItems2; ++j) {
        const int64_t i = c0 + int64_t{j} * kThreads + threadIdx.x;
        xs[j] = i < m ? a[start + i * stride] : 0.0f;
      }
#pragma unroll
      for (int j = 0; j < kItems2; ++j) {
        const int64_t i = c0 + int64_t{j} * kThreads + threadIdx.x;
        uint32_t bin0 = 0xffffffffu;
        uint32_t bin1 = 0xffffffffu;
        if (i < m) {
          const float x = xs[j];
          if (first) {
            if (job.check_nan && isnan(x)) {
              atomicMin(&scratch->nan_first, static_cast<unsigned long long>(start + i * stride));
            }
            if (job.in.gather != nullptr) job.in.gather[i] = fabsf(x);
            if (counting) counted += fabsf(x) >= count_at;
          }
          const uint32_t key = mag_bits(x);
          if (on0 && (key & fixed) == prefix0) bin0 = (key >> shifts[p]) & masks[p];
          if (on1 && (key & fixed) == prefix1) bin1 = (key >> shifts[p]) & masks[p];
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
    if (counting) {
      const int total = Reduce(tmp.reduce).Sum(counted);
      if (threadIdx.x == 0 && total != 0) {
        atomicAdd(&scratch->aux, static_cast<unsigned long long>(total));
      }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < bins; i += kThreads) {
      const unsigned int c = sh[i / kBins][i % kBins];
      if (c != 0) atomicAdd(&scratch->hist[p][i / kBins][i % kBins], c);
    }
    grid.sync();
    if (first && blockIdx.x == 0 && threadIdx.x == 0) {
      // Every block has added its NaN position and its count: publish them, clear the scratch.
      const unsigned long long nan = __ldcg(&scratch->nan_first);
      const unsigned long long aux = __ldcg(&scratch->aux);
      if (job.reset_nan) {
        ctl->nan_first = nan;
      } else if (nan < ctl->nan_first) {
        ctl->nan_first = nan;
      }
      if (job.counts) {
        ctl->count = 0;
        ctl->overflow = 0;
        ctl->list_hits = 0;
        ctl->aux = aux;
      } else {
        ctl->aux += aux;
      }
      for (int g = 0; g < kGroups; ++g) ctl->groups[g] = 0;
      scratch->nan_first = kNoNan;
      scratch->aux = 0;
    }
    if (p == 1) {
      // Every block read pass 0's histograms before the barrier just passed: clear them for the
      // next launch.
      for (int64_t i = gtid; i < 2 * kBins; i += gthreads) (&scratch->hist[0][0][0])[i] = 0;
    }
    if (on0)
      pick_digit<Scan>(scratch->hist[p][0], masks[p], shifts[p], &prefix[0], &krem[0], tmp.scan);
    __syncthreads();
    if (on1)
      pick_digit<Scan>(scratch->hist[p][1], masks[p], shifts[p], &prefix[1], &krem[1], tmp.scan);
    __syncthreads();
    fixed |= masks[p] << shifts[p];
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    if (job.k0 > 0) {
      ctl->result[0] = prefix[0];
      ctl->thr = __uint_as_float(prefix[0]);
    }
    if (job.k1 > 0) ctl->result[1] = prefix[1];
  }
}

}  // namespace terse::dgc_cuda

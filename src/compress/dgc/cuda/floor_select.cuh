#pragma once

// step()'s sample threshold from the provisional threshold (the floor), without the radix select:
// every block reads its part of the sample and appends the keys at or above the floor to a
// candidate list (their count, the CPU's count of sampled values at or above the provisional
// threshold, goes to ctl->aux); the last block to finish picks the k0-th largest (the threshold)
// and the k1-th (the next provisional threshold; the lowest candidate's when fewer are listed)
// over the candidates alone. It succeeds (ctl->floored) when the list holds at least k0 and at
// most kCandidates keys: then every sampled key at or above the threshold is in it, and the
// results are the radix select's, bit for bit. Otherwise the caller runs the radix select. The
// floor is the sample's value of rank list_k * top_k_samples at the step before, so the list
// holds about that many keys. Private to terse_dgc.

#include <cuda_runtime.h>

#include <cstdint>
#include <cub/block/block_scan.cuh>

#include "radix_select.cuh"
#include "select_kernels.cuh"

namespace terse::dgc_cuda {

struct FloorJob {
  const float* a;  // the sample: |a[i]| for i in [0, m)
  int64_t m;
  long long k0;        // the threshold's rank
  long long k1;        // the next provisional threshold's rank
  const float* floor;  // a floor that is not a positive number lists every key or none: no result
};

// Into ctl: aux (the keys listed), and thr, result[0], result[1] and floored = 1 on success.
// s: the radix select's scratch (its candidate list 0, count and arrival counter, left cleared).
__global__ void __launch_bounds__(kThreads)
    floor_select_kernel(FloorJob job, Ctl* ctl, RadixScratch* s) {
  __shared__ RadixBlock b;
  using Scan = cub::BlockScan<long long, kThreads>;
  __shared__ typename Scan::TempStorage tmp;
  __shared__ unsigned int listed;
  const int lane = static_cast<int>(threadIdx.x & 31u);
  const float floor = *job.floor;
  const int64_t gthreads = int64_t{gridDim.x} * kThreads;
  constexpr int kChunk = 4;
  for (int64_t c0 = int64_t{blockIdx.x} * kThreads * kChunk; c0 < job.m; c0 += gthreads * kChunk) {
    float xs[kChunk];
#pragma unroll
    for (int j = 0; j < kChunk; ++j) {
      const int64_t i = c0 + int64_t{j} * kThreads + threadIdx.x;
      xs[j] = i < job.m ? job.a[i] : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < kChunk; ++j) {
      const bool valid = c0 + int64_t{j} * kThreads + threadIdx.x < job.m;
      // A float compare, as the radix select's count: NaN is never listed.
      append_key(s->cand[0], &s->cand_count[0], valid && fabsf(xs[j]) >= floor, mag_bits(xs[j]),
                 lane);
    }
  }
  if (!last_to_arrive(s, b)) return;
  if (threadIdx.x == 0) {
    listed = __ldcg(&s->cand_count[0]);
    s->cand_count[0] = 0;
    s->arrived = 0;
    ctl->aux = listed;
  }
  __syncthreads();
  const long long c = listed;
  if (c < job.k0 || c > kCandidates) return;  // uniform: floored stays 0
  if (threadIdx.x < 2) {
    b.prefix[threadIdx.x] = 0;
    b.krem[threadIdx.x] = threadIdx.x == 0 ? job.k0 : (c < job.k1 ? c : job.k1);
    b.in_digit[threadIdx.x] = 0;
  }
  __syncthreads();
  const uint32_t* const lists[2] = {s->cand[0], s->cand[0]};
  const int counts[2] = {static_cast<int>(c), static_cast<int>(c)};
  finish_on_candidates<Scan>(lists, counts, 0, 0u, true, true, b, tmp);
  if (threadIdx.x == 0) {
    ctl->result[0] = b.prefix[0];
    ctl->result[1] = b.prefix[1];
    ctl->thr = __uint_as_float(b.prefix[0]);
    ctl->floored = 1;
  }
}

}  // namespace terse::dgc_cuda

#pragma once

// DgcMemory::step's pass on the GPU: the momentum correction (DgcMemory::compensate's arithmetic;
// built with -fmad=false, so the same bits) that appends every index with |V| >= hint to an
// unordered candidate list. Private to terse_dgc.

#include <cuda_runtime.h>

#include <cstdint>

#include "select_kernels.cuh"

namespace terse::dgc_cuda {

struct ListOut {
  int64_t* idx;
  float* mag;
  unsigned long long cap;  // entries past it are counted in ctl->list_count but not written
};

template <bool kNesterov>
__device__ __forceinline__ float correct(float& u, float& v, float g, float m) {
  const float ui = kNesterov ? m * (u + g) : m * u + g;
  const float vi = v + (kNesterov ? ui + g : ui);
  u = ui;
  v = vi;
  return vi;
}

// Appends i (with |vi|) when |vi| >= hint: one atomic per warp for all of its lanes' hits. Every
// lane of the warp calls it (in range or not), so the ballot is over the full warp.
__device__ __forceinline__ void maybe_list(bool hit, int64_t i, float vi, Ctl* ctl,
                                           const ListOut& out) {
  const unsigned ballot = __ballot_sync(0xffffffffu, hit);
  if (ballot == 0) return;
  const int lane = static_cast<int>(threadIdx.x & 31u);
  unsigned long long base = 0;
  if (lane == __ffs(ballot) - 1) {
    base = atomicAdd(&ctl->list_count, static_cast<unsigned long long>(__popc(ballot)));
  }
  base = __shfl_sync(0xffffffffu, base, __ffs(ballot) - 1);
  if (!hit) return;
  const unsigned long long pos = base + __popc(ballot & ((1u << lane) - 1u));
  if (pos < out.cap) {
    out.idx[pos] = i;
    out.mag[pos] = fabsf(vi);
  }
}

// Groups of 4 elements, a group per thread per round; kVec: U, V and g are 16-byte aligned, so a
// whole group moves as one float4 each. Rounds are uniform across a warp (the ballot needs every
// lane), and a group past n, or the part of the last group past it, does nothing.
template <bool kNesterov, bool kVec>
__global__ void __launch_bounds__(kThreads)
    compensate_list_kernel(float* __restrict__ u, float* __restrict__ v,
                           const float* __restrict__ g, int64_t n, float m, float hint, Ctl* ctl,
                           ListOut out) {
  const int64_t groups = (n + 3) / 4;
  const int64_t stride = int64_t{gridDim.x} * kThreads;
  const int64_t warp0 = int64_t{blockIdx.x} * kThreads + (threadIdx.x & ~31u);
  const bool listing = hint > 0.0f;
  for (int64_t q0 = warp0; q0 < groups; q0 += stride) {
    const int64_t q = q0 + (threadIdx.x & 31u);
    const int64_t i0 = 4 * q;
    float vi[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    bool in[4] = {false, false, false, false};
    if (q < groups) {
      if (kVec && i0 + 4 <= n) {
        float4 uu = *reinterpret_cast<const float4*>(u + i0);
        float4 vv = *reinterpret_cast<const float4*>(v + i0);
        const float4 gg = *reinterpret_cast<const float4*>(g + i0);
        vi[0] = correct<kNesterov>(uu.x, vv.x, gg.x, m);
        vi[1] = correct<kNesterov>(uu.y, vv.y, gg.y, m);
        vi[2] = correct<kNesterov>(uu.z, vv.z, gg.z, m);
        vi[3] = correct<kNesterov>(uu.w, vv.w, gg.w, m);
        *reinterpret_cast<float4*>(u + i0) = uu;
        *reinterpret_cast<float4*>(v + i0) = vv;
        in[0] = in[1] = in[2] = in[3] = true;
      } else {
        for (int e = 0; e < 4; ++e) {
          const int64_t i = i0 + e;
          if (i >= n) break;
          float uu = u[i];
          float vv = v[i];
          vi[e] = correct<kNesterov>(uu, vv, g[i], m);
          u[i] = uu;
          v[i] = vv;
          in[e] = true;
        }
      }
    }
    if (listing) {
#pragma unroll
      for (int e = 0; e < 4; ++e)
        maybe_list(in[e] && fabsf(vi[e]) >= hint, i0 + e, vi[e], ctl, out);
    }
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

}  // namespace terse::dgc_cuda

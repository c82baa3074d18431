#pragma once

// How the 8-bit step's kernel (eightbit_kernel.cuh) moves one quantization block: the lanes'
// elements, their loads and stores between global memory and registers, and the copy pipeline
// through shared memory. Internal to src/kernels/cuda.

#include <cuda_pipeline_primitives.h>

#include <cstdint>

#include "pack4.cuh"
#include "terse/core/dtype.h"
#include "terse/kernels/quant_code.h"

namespace terse::cuda_eightbit {

constexpr int kBlock = static_cast<int>(kQuantBlockSize);  // 256 elements per absmax
constexpr int kPerLane = kBlock / 32;                      // a warp takes one block

using cuda_launch::Pack4;

// Element k (< 8) of a lane within its block. With vector access, lane l takes elements
// [4l, 4l + 4) of each 128-element half (one 16- or 8-byte access per half, a warp's accesses
// contiguous); otherwise l + 32k, so each scalar access of a warp is one contiguous run. The
// mapping does not change any result: elements are independent and the block max is
// order-free (abs_bits).
template <bool kVec>
__device__ __forceinline__ int elem(int lane, int k) {
  return kVec ? (k / 4) * 128 + 4 * lane + (k % 4) : 32 * k + lane;
}

// The lane's 8 elements of src[0, len) as floats (0 past len).
template <bool kVec, typename T>
__device__ __forceinline__ void load8(const T* __restrict__ src, int lane, int len,
                                      float (&out)[kPerLane]) {
  if constexpr (kVec) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const Pack4<T> q = *reinterpret_cast<const Pack4<T>*>(src + h * 128 + 4 * lane);
#pragma unroll
      for (int e = 0; e < 4; ++e) out[4 * h + e] = load_as_float(q.v, e);
    }
  } else {
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int j = elem<false>(lane, k);
      out[k] = j < len ? load_as_float(src, j) : 0.0f;
    }
  }
}

template <bool kVec, typename T>
__device__ __forceinline__ void store8(T* __restrict__ dst, int lane, int len,
                                       const float (&in)[kPerLane]) {
  if constexpr (kVec) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      Pack4<T> q;
#pragma unroll
      for (int e = 0; e < 4; ++e) store_from_float(q.v, e, in[4 * h + e]);
      *reinterpret_cast<Pack4<T>*>(dst + h * 128 + 4 * lane) = q;
    }
  } else {
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int j = elem<false>(lane, k);
      if (j < len) store_from_float(dst, j, in[k]);
    }
  }
}

// The lane's 8 codes, packed 4 to a word (code k in byte k % 4 of word k / 4): one 32-bit
// access per word with vector access (bytes in address order, little-endian).
template <bool kVec>
__device__ __forceinline__ void load_codes(const uint8_t* __restrict__ src, int lane, int len,
                                           uint32_t (&out)[2]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if constexpr (kVec) {
      out[h] = *reinterpret_cast<const uint32_t*>(src + h * 128 + 4 * lane);
    } else {
      uint32_t w = 0;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int j = elem<false>(lane, 4 * h + e);
        w |= (j < len ? uint32_t{src[j]} : 0u) << (8 * e);
      }
      out[h] = w;
    }
  }
}

template <bool kVec>
__device__ __forceinline__ void store_codes(uint8_t* __restrict__ dst, int lane, int len,
                                            const uint32_t (&in)[2]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if constexpr (kVec) {
      *reinterpret_cast<uint32_t*>(dst + h * 128 + 4 * lane) = in[h];
    } else {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int j = elem<false>(lane, 4 * h + e);
        if (j < len) dst[j] = static_cast<uint8_t>(in[h] >> (8 * e));
      }
    }
  }
}

__device__ __forceinline__ uint32_t code_at(const uint32_t (&w)[2], int k) {
  return (w[k / 4] >> (8 * (k % 4))) & 0xffu;
}

// A task's arrays, read from its Desc once per chunk: the Desc lives in global memory, which the
// step's own stores might alias for all the compiler knows, so fields read at each use would be
// read again after every store.
template <typename T>
struct Arrays {
  T* p;
  const T* g;
  uint8_t* codes[2];
  float* absmax[2];
};

// A lane's share of one quantization block, as loaded (from global memory, or from the copy
// pipeline's shared memory): its 8 params and grads as floats, its codes and the block's absmax
// per state.
struct BlockIn {
  float pv[kPerLane];
  float gv[kPerLane];
  uint32_t c[2][2];
  float a[2];
};

template <int kN, typename T, bool kVec>
__device__ __forceinline__ void load_block(const Arrays<T>& q, int64_t b, int len, int lane,
                                           BlockIn& in) {
  const int64_t lo = b * kBlock;
  load8<kVec>(q.p + lo, lane, len, in.pv);
  load8<kVec>(q.g + lo, lane, len, in.gv);
  in.a[0] = in.a[1] = 0.0f;
#pragma unroll
  for (int k = 0; k < kN; ++k) {
    load_codes<kVec>(q.codes[k] + lo, lane, len, in.c[k]);
    in.a[k] = q.absmax[k][b];
  }
}

// A block's share of shared memory in the copy pipeline (kStages >= 2 in run_chunk): its params,
// grads and codes as they lie in global memory, and each lane's copy of the absmax, per state.
// Sized for f32 params (the largest) whatever the dtype, as one launch may hold all three.
template <int kN>
struct Stage {
  static constexpr int kP = 0;
  static constexpr int kG = kBlock * 4;
  static constexpr int kCodes = 2 * kG;
  static constexpr int kAbsmax = kCodes + kN * kBlock;
  static constexpr int kBytes = kAbsmax + kN * 32 * 4;
};

// Starts the copies of block b's share of lane `lane` into `st` (cp.async: no registers hold the
// data in flight); the lane reads back only what it copied, so no warp barrier is needed.
template <int kN, typename T>
__device__ __forceinline__ void copy_block(const Arrays<T>& q, int64_t b, int lane,
                                           unsigned char* st) {
  using S = Stage<kN>;
  const int64_t lo = b * kBlock;
  constexpr int kVecBytes = 4 * static_cast<int>(sizeof(T));
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int j = h * 128 + 4 * lane;
    __pipeline_memcpy_async(st + S::kP + j * sizeof(T), q.p + lo + j, kVecBytes);
    __pipeline_memcpy_async(st + S::kG + j * sizeof(T), q.g + lo + j, kVecBytes);
#pragma unroll
    for (int k = 0; k < kN; ++k) {
      __pipeline_memcpy_async(st + S::kCodes + k * kBlock + j, q.codes[k] + lo + j, 4);
    }
  }
#pragma unroll
  for (int k = 0; k < kN; ++k) {
    __pipeline_memcpy_async(st + S::kAbsmax + (k * 32 + lane) * 4, q.absmax[k] + b, 4);
  }
}

// The lane's share of a copied block, as load_block gives it.
template <int kN, typename T>
__device__ __forceinline__ void read_stage(const unsigned char* st, int lane, BlockIn& in) {
  using S = Stage<kN>;
  load8<true>(reinterpret_cast<const T*>(st + S::kP), lane, kBlock, in.pv);
  load8<true>(reinterpret_cast<const T*>(st + S::kG), lane, kBlock, in.gv);
  in.a[0] = in.a[1] = 0.0f;
#pragma unroll
  for (int k = 0; k < kN; ++k) {
    load_codes<true>(st + S::kCodes + k * kBlock, lane, kBlock, in.c[k]);
    in.a[k] = *reinterpret_cast<const float*>(st + S::kAbsmax + (k * 32 + lane) * 4);
  }
}

}  // namespace terse::cuda_eightbit

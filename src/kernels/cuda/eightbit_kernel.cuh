#pragma once

// The kernel of cuda_eightbit_step (eightbit_step.cu) and the host side of its launch table.
// Internal to src/kernels/cuda; a header so that the index arithmetic can be read apart from the
// launcher.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "launch_table.cuh"
#include "pack4.cuh"
#include "terse/core/dtype.h"
#include "terse/kernels/cuda_eightbit_step.h"
#include "terse/kernels/eightbit_element.h"
#include "terse/kernels/quant_code.h"

namespace terse::cuda_eightbit {

constexpr int kBlock = static_cast<int>(kQuantBlockSize);  // 256 elements per absmax
constexpr int kPerLane = kBlock / 32;                      // a warp takes one block
constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;
// Quantization blocks per thread block: each loads its maps' tables (about 9 KB a state) once.
// On an H100 at 256M params, 128 against 32 and 64: Adam 8-bit 76.0 % of copy against 63.9 and
// 74.9 % (with 4 thread blocks per SM).
constexpr int64_t kChunkBlocks = 128;
static_assert(kPerLane == 8 && kThreads == 256,
              "the kernel maps 8 elements to a lane and loads "
              "a 256-entry table with one thread per entry");

// A task as the kernel sees it.
template <typename Rule>
struct Desc {
  Rule rule;
  void* p;
  const void* g;
  uint8_t* codes[2];
  float* absmax[2];
  float* values[2];
  int64_t n;
  int32_t dtype;      // DType
  int32_t eight_bit;  // codes + absmax, else f32 values
  int32_t vec;        // params, grads and states aligned for 4-element vector access
};

// Thread block b takes blocks [chunk * kChunkBlocks, +kChunkBlocks) of task `task`.
using cuda_launch::ChunkRef;
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

// A map in shared memory: code values, the midpoints in order and the bucket counts
// (bucket_map_code, quant_code.h; the tree it falls back on for |x| >= 2 and NaN is read from
// global memory).
struct SharedMap {
  float code[256];
  float mid[256];
  uint32_t base[CudaQuantMap::kBaseBytes / 4];
};

// One quantization block `b` (len elements, < 256 only for a tensor's last block) by one warp:
// eightbit_block_step's steps (eightbit_block_step.h) on the lane's 8 elements.
template <typename Rule, bool kSkip, typename T, bool kVec>
__device__ __forceinline__ void quant_block(const Desc<Rule>& d, const Rule& r, int64_t b, int len,
                                            int lane, const SharedMap* maps,
                                            const CudaQuantMap* __restrict__ gmaps) {
  constexpr int kN = Rule::kNumStates;
  const int64_t lo = b * kBlock;
  T* p = static_cast<T*>(d.p) + lo;
  const T* g = static_cast<const T*>(d.g) + lo;
  float pv[kPerLane], gv[kPerLane], s[2][kPerLane];
  uint32_t c[2][2];
  load8<kVec>(p, lane, len, pv);
  load8<kVec>(g, lane, len, gv);
  float a[2] = {0.0f, 0.0f};
#pragma unroll
  for (int k = 0; k < kN; ++k) {
    load_codes<kVec>(d.codes[k] + lo, lane, len, c[k]);
    a[k] = d.absmax[k][b];
  }
#pragma unroll
  for (int e = 0; e < kPerLane; ++e) {
    // dequantize_block: map value * absmax.
    float x0 = maps[0].code[code_at(c[0], e)] * a[0];
    float x1 = kN > 1 ? maps[kN - 1].code[code_at(c[kN - 1], e)] * a[kN - 1] : 0.0f;
    eightbit_update<Rule, kSkip>(r, pv[e], gv[e], x0, x1);
    s[0][e] = x0;
    s[1][e] = x1;
  }
  // The params are final: store them now, which frees their registers for the quantization.
  store8<kVec>(p, lane, len, pv);
  // Every lane has read this block's absmax before the shuffles, and lane 0 writes the new one
  // after them; no other warp touches this block.
#pragma unroll
  for (int k = 0; k < kN; ++k) {
    uint32_t m = 0;
#pragma unroll
    for (int e = 0; e < kPerLane; ++e) {
      const uint32_t v = abs_bits(s[k][e]);
      if ((kVec || elem<kVec>(lane, e) < len) && v > m) m = v;
    }
#pragma unroll
    for (int off = 16; off > 0; off /= 2) {
      const uint32_t o = __shfl_xor_sync(0xffffffffu, m, off);
      m = o > m ? o : m;
    }
    const float am = absmax_of_bits(m);
    if (lane == 0) d.absmax[k][b] = am;
    // quantize_block: the zero code unless absmax > 0, else the code of s * (1 / absmax).
    const float inv = 1.0f / am;
    const bool is_signed = gmaps[k].is_signed != 0;
    const uint32_t zero = gmaps[k].zero_code;
    uint32_t out[2] = {0u, 0u};
#pragma unroll
    for (int e = 0; e < kPerLane; ++e) {
      const uint32_t code =
          am > 0.0f ? bucket_map_code(reinterpret_cast<const uint8_t*>(maps[k].base), maps[k].mid,
                                      gmaps[k].tree, s[k][e] * inv, is_signed, zero)
                    : zero;
      out[e / 4] |= code << (8 * (e % 4));
    }
    store_codes<kVec>(d.codes[k] + lo, lane, len, out);
  }
}

// One block of a tensor with f32 states (below min_8bit_size): f32_state_step's loop.
template <typename Rule, typename T, bool kVec>
__device__ __forceinline__ void f32_block(const Desc<Rule>& d, const Rule& r, int64_t b, int len,
                                          int lane) {
  constexpr int kN = Rule::kNumStates;
  const int64_t lo = b * kBlock;
  T* p = static_cast<T*>(d.p) + lo;
  const T* g = static_cast<const T*>(d.g) + lo;
  float pv[kPerLane], gv[kPerLane], s[2][kPerLane];
  load8<kVec>(p, lane, len, pv);
  load8<kVec>(g, lane, len, gv);
#pragma unroll
  for (int k = 0; k < kN; ++k) load8<kVec>(d.values[k] + lo, lane, len, s[k]);
#pragma unroll
  for (int e = 0; e < kPerLane; ++e) {
    float x0 = s[0][e];
    float x1 = kN > 1 ? s[kN - 1][e] : 0.0f;
    f32_state_update(r, pv[e], gv[e], x0, x1);
    s[0][e] = x0;
    s[1][e] = x1;
  }
#pragma unroll
  for (int k = 0; k < kN; ++k) store8<kVec>(d.values[k] + lo, lane, len, s[k]);
  store8<kVec>(p, lane, len, pv);
}

// The warps of a thread block take the chunk's blocks in turn; every branch below is uniform
// in a warp (the shuffles need all 32 lanes).
template <typename Rule, bool kSkip, typename T>
__device__ __forceinline__ void run_chunk(const Desc<Rule>& d, int32_t chunk, const SharedMap* maps,
                                          const CudaQuantMap* __restrict__ gmaps) {
  const Rule r = d.rule;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int64_t blocks = (d.n + kBlock - 1) / kBlock;
  const int64_t first = int64_t{chunk} * kChunkBlocks;
  const int64_t last = first + kChunkBlocks < blocks ? first + kChunkBlocks : blocks;
  for (int64_t b = first + warp; b < last; b += kWarps) {
    const int64_t rest = d.n - b * kBlock;
    const int len = rest < kBlock ? static_cast<int>(rest) : kBlock;
    const bool vec = len == kBlock && d.vec != 0;
    if (d.eight_bit != 0) {
      if (vec) {
        quant_block<Rule, kSkip, T, true>(d, r, b, len, lane, maps, gmaps);
      } else {
        quant_block<Rule, kSkip, T, false>(d, r, b, len, lane, maps, gmaps);
      }
    } else if (vec) {
      f32_block<Rule, T, true>(d, r, b, len, lane);
    } else {
      f32_block<Rule, T, false>(d, r, b, len, lane);
    }
  }
}

// At most 64 registers (4 thread blocks of 256 per SM): the loads of 32 warps in flight per SM.
// On an H100, Adam 8-bit at 2, 3, 4, 5 and 6 blocks per SM: 52.9, 68.9, 76.0, 73.7 and 60.2 %
// of copy. At 64 some instantiations spill about 100 bytes (L1-resident); still the fastest.
template <typename Rule, bool kSkip>
__global__ void __launch_bounds__(kThreads, 4)
    eightbit_kernel(const Desc<Rule>* __restrict__ descs, const ChunkRef* __restrict__ chunks,
                    const CudaQuantMap* __restrict__ gmaps) {
  constexpr int kN = Rule::kNumStates;
  __shared__ SharedMap maps[kN];
  const ChunkRef c = chunks[blockIdx.x];
  const Desc<Rule>& d = descs[c.task];
  if (d.eight_bit != 0) {  // the same for the whole thread block
#pragma unroll
    for (int k = 0; k < kN; ++k) {
      maps[k].code[threadIdx.x] = gmaps[k].code[threadIdx.x];
      maps[k].mid[threadIdx.x] = gmaps[k].mid[threadIdx.x];
      const auto* base = reinterpret_cast<const uint32_t*>(gmaps[k].base);
      for (unsigned w = threadIdx.x; w < CudaQuantMap::kBaseBytes / 4; w += kThreads) {
        maps[k].base[w] = base[w];
      }
    }
    __syncthreads();
  }
  switch (d.dtype) {
    case static_cast<int32_t>(DType::kF32):
      run_chunk<Rule, kSkip, float>(d, c.chunk, maps, gmaps);
      break;
    case static_cast<int32_t>(DType::kBF16):
      run_chunk<Rule, kSkip, BFloat16>(d, c.chunk, maps, gmaps);
      break;
    default:
      run_chunk<Rule, kSkip, Half>(d, c.chunk, maps, gmaps);
      break;
  }
}

// The launch table of `tasks`: one Desc per tensor with elements, one ChunkRef per chunk of
// kChunkBlocks blocks (the launch's grid).
template <typename Rule>
void launch_table(const std::vector<CudaEightBitTask<Rule>>& tasks, std::vector<Desc<Rule>>& descs,
                  std::vector<ChunkRef>& chunks) {
  descs.clear();
  chunks.clear();
  for (const CudaEightBitTask<Rule>& t : tasks) {
    if (t.param.numel == 0) continue;
    Desc<Rule> d{};
    d.rule = t.rule;
    d.p = t.param.data;
    d.g = t.grad.data;
    d.n = t.param.numel;
    d.dtype = static_cast<int32_t>(t.param.dtype);
    d.eight_bit = t.eight_bit ? 1 : 0;
    const size_t width = 4 * dtype_size(t.param.dtype);
    using cuda_launch::is_aligned;
    bool vec = is_aligned(d.p, width) && is_aligned(d.g, width);
    for (int k = 0; k < Rule::kNumStates; ++k) {
      d.codes[k] = t.codes[k];
      d.absmax[k] = t.absmax[k];
      d.values[k] = t.values[k];
      vec = vec && (t.eight_bit ? is_aligned(d.codes[k], 4) : is_aligned(d.values[k], 16));
    }
    d.vec = vec ? 1 : 0;
    // A chunk of kChunkBlocks whole blocks: ceil(ceil(n / kBlock) / kChunkBlocks) chunks.
    cuda_launch::add_chunks(chunks, descs.size(), d.n, kChunkBlocks * kBlock);
    descs.push_back(d);
  }
}

}  // namespace terse::cuda_eightbit

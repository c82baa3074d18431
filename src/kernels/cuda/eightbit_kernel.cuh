#pragma once

// The kernel of cuda_eightbit_step (eightbit_step.cu) and the host side of its launch table.
// Internal to src/kernels/cuda; a header so that the index arithmetic can be read apart from the
// launcher.

#include <cfloat>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "eightbit_access.cuh"
#include "fast_ieee.cuh"
#include "launch_table.cuh"
#include "terse/core/dtype.h"
#include "terse/kernels/cuda_eightbit_step.h"
#include "terse/kernels/eightbit_element.h"
#include "terse/kernels/quant_code.h"

namespace terse::cuda_eightbit {

constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;
// Quantization blocks per thread block: each loads its maps' tables (about 9 KB a state) once.
// On an H100 at 256M params, 128 against 32 and 64: Adam 8-bit 76.0 % of copy against 63.9 and
// 74.9 % (registers only, 4 thread blocks per SM); with the copy pipeline, 256 and 512 were
// within the runs' spread of 128.
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

// A map in shared memory: code values, the midpoints in order and the bucket counts
// (bucket_map_code, quant_code.h; the tree it falls back on for |x| >= 2 and NaN is read from
// global memory), and the sign rule's fields.
struct SharedMap {
  float code[256];
  float mid[256];
  uint32_t base[CudaQuantMap::kBaseBytes / 4];
  uint32_t is_signed;
  uint32_t zero_code;
};

// Whether eightbit_update_with can take the Rule (it has apply(math, ...): BnbAdamRule).
template <typename Rule, typename = void>
struct TakesMath : std::false_type {};
template <typename Rule>
struct TakesMath<Rule, std::void_t<decltype(std::declval<const Rule&>().apply(
                           std::declval<cuda_fast::FastIeee&>(), std::declval<float&>(), 0.0f,
                           std::declval<float&>(), std::declval<float&>()))>> : std::true_type {};

// The lane's 8 elements through the Rule, from `in` (its params become the new ones) into the
// new states s. A Rule that divides or takes a square root runs them branch-free (FastIeee); in
// the rare lane where some operand is outside their exact range, the 8 elements run again with
// `/` and sqrtf, from the params reloaded (nothing of this block is stored yet).
template <typename Rule, bool kSkip, typename T, bool kVec>
__device__ __forceinline__ void update_block(const Arrays<T>& q, const Rule& r, int64_t b, int len,
                                             int lane, BlockIn& in, const SharedMap* maps,
                                             float (&s)[2][kPerLane]) {
  constexpr int kN = Rule::kNumStates;
  // dequantize_block: map value * absmax.
  auto dequantize = [&](int e, float& x0, float& x1) {
    x0 = maps[0].code[code_at(in.c[0], e)] * in.a[0];
    x1 = kN > 1 ? maps[kN - 1].code[code_at(in.c[kN - 1], e)] * in.a[kN - 1] : 0.0f;
  };
  if constexpr (TakesMath<Rule>::value) {
    cuda_fast::FastIeee fast;
#pragma unroll
    for (int e = 0; e < kPerLane; ++e) {
      dequantize(e, s[0][e], s[1][e]);
      eightbit_update_with<Rule, kSkip>(r, fast, in.pv[e], in.gv[e], s[0][e], s[1][e]);
    }
    if (!fast.slow) return;
    load8<kVec>(q.p + b * kBlock, lane, len, in.pv);
  }
#pragma unroll
  for (int e = 0; e < kPerLane; ++e) {
    dequantize(e, s[0][e], s[1][e]);
    eightbit_update<Rule, kSkip>(r, in.pv[e], in.gv[e], s[0][e], s[1][e]);
  }
}

// One quantization block `b` (len elements, < 256 only for a tensor's last block) by one warp,
// from its loaded share `in`: eightbit_block_step's steps (eightbit_block_step.h) on the lane's
// 8 elements.
template <typename Rule, bool kSkip, typename T, bool kVec>
__device__ __forceinline__ void quant_block(const Arrays<T>& q, const Rule& r, int64_t b, int len,
                                            int lane, BlockIn& in, const SharedMap* maps,
                                            const CudaQuantMap* __restrict__ gmaps) {
  constexpr int kN = Rule::kNumStates;
  const int64_t lo = b * kBlock;
  float s[2][kPerLane];
  update_block<Rule, kSkip, T, kVec>(q, r, b, len, lane, in, maps, s);
  // The params are final: store them now, which frees their registers for the quantization.
  store8<kVec>(q.p + lo, lane, len, in.pv);
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
    if (lane == 0) q.absmax[k][b] = am;
    // quantize_block: the zero code unless absmax > 0, else the code of s * (1 / absmax). The
    // cases are uniform in the warp. With absmax in [FLT_MIN, FLT_MAX] every |s * (1 / absmax)|
    // of the block is below 2 (1 / absmax is finite, |s| <= absmax), so the tables give every
    // code without a branch per element; absmax = inf takes bucket_map_code's whole form. A
    // short block's elements past len are not in the absmax, so it takes the whole form too.
    const auto* base = reinterpret_cast<const uint8_t*>(maps[k].base);
    const bool is_signed = maps[k].is_signed != 0;
    const uint32_t zero = maps[k].zero_code;
    uint32_t out[2] = {0u, 0u};
    auto put = [&](int e, uint32_t code) { out[e / 4] |= code << (8 * (e % 4)); };
    if (kVec && am >= FLT_MIN && am <= FLT_MAX) {
      const float inv = 1.0f / am;
      // The map's sign rule as a constant (is_signed is uniform): an unsigned map's codes are
      // the counts themselves.
      auto codes = [&](auto is_signed_c) {
#pragma unroll
        for (int e = 0; e < kPerLane; ++e) {
          const float x = s[k][e] * inv;
          const uint32_t c = bucket_midpoints_below(base, maps[k].mid, x);
          put(e, decltype(is_signed_c)::value ? signed_code(c, x, true, zero) : c);
        }
      };
      if (is_signed) {
        codes(std::true_type{});
      } else {
        codes(std::false_type{});
      }
    } else if (am > 0.0f) {
      const float inv = 1.0f / am;
#pragma unroll
      for (int e = 0; e < kPerLane; ++e) {
        put(e, bucket_map_code(base, maps[k].mid, gmaps[k].tree, s[k][e] * inv, is_signed, zero));
      }
    } else {
      out[0] = out[1] = zero * 0x01010101u;
    }
    store_codes<kVec>(q.codes[k] + lo, lane, len, out);
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
// in a warp (the shuffles need all 32 lanes). With kStages >= 2 a warp's whole 8-bit blocks with
// vector access (all but a tensor's last, short one) go through a copy pipeline in shared
// memory (`stages`, kStages blocks a warp): the copies of kStages - 1 blocks are in flight while
// the warp works on one, and hold no registers. The rest, and everything with kStages = 0, loads
// into registers and works block by block.
template <typename Rule, bool kSkip, typename T, int kStages>
__device__ __forceinline__ void run_chunk(const Desc<Rule>& d, int32_t chunk, const SharedMap* maps,
                                          const CudaQuantMap* __restrict__ gmaps,
                                          unsigned char* stages) {
  constexpr int kN = Rule::kNumStates;
  const Rule r = d.rule;
  const Arrays<T> q{static_cast<T*>(d.p),
                    static_cast<const T*>(d.g),
                    {d.codes[0], d.codes[kN - 1]},
                    {d.absmax[0], d.absmax[kN - 1]}};
  const int64_t n = d.n;
  const bool eight_bit = d.eight_bit != 0;
  const bool vec_task = d.vec != 0;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  const int64_t first = int64_t{chunk} * kChunkBlocks;
  const int64_t last = first + kChunkBlocks < blocks ? first + kChunkBlocks : blocks;
  int64_t b = first + warp;
  if constexpr (kStages >= 2) {
    const int64_t whole = n / kBlock;
    const int64_t end = last < whole ? last : whole;
    if (eight_bit && vec_task && b < end) {
      // Block i of this warp (b + i * kWarps) goes through stage i % kStages. Every iteration
      // commits a group of copies (empty past the end), so waiting for all but the newest
      // kStages - 1 groups waits for block i's. A stage is copied into again only after its
      // block's values were used, so the warp's reads of it are done.
      constexpr int kStageBytes = Stage<kN>::kBytes;
      unsigned char* mine = stages + warp * kStages * kStageBytes;
      const int64_t count = (end - b + kWarps - 1) / kWarps;
#pragma unroll
      for (int i = 0; i < kStages - 1; ++i) {
        if (i < count) copy_block<kN, T>(q, b + i * kWarps, lane, mine + i * kStageBytes);
        __pipeline_commit();
      }
      for (int64_t i = 0; i < count; ++i) {
        const int64_t ahead = i + kStages - 1;
        if (ahead < count) {
          copy_block<kN, T>(q, b + ahead * kWarps, lane, mine + (ahead % kStages) * kStageBytes);
        }
        __pipeline_commit();
        __pipeline_wait_prior(kStages - 1);
        BlockIn in;
        read_stage<kN, T>(mine + (i % kStages) * kStageBytes, lane, in);
        quant_block<Rule, kSkip, T, true>(q, r, b + i * kWarps, kBlock, lane, in, maps, gmaps);
      }
      b += count * kWarps;
    }
  }
  for (; b < last; b += kWarps) {
    const int64_t rest = n - b * kBlock;
    const int len = rest < kBlock ? static_cast<int>(rest) : kBlock;
    const bool vec = len == kBlock && vec_task;
    if (eight_bit) {
      BlockIn in;
      if (vec) {
        load_block<kN, T, true>(q, b, len, lane, in);
        quant_block<Rule, kSkip, T, true>(q, r, b, len, lane, in, maps, gmaps);
      } else {
        load_block<kN, T, false>(q, b, len, lane, in);
        quant_block<Rule, kSkip, T, false>(q, r, b, len, lane, in, maps, gmaps);
      }
    } else if (vec) {
      f32_block<Rule, T, true>(d, r, b, len, lane);
    } else {
      f32_block<Rule, T, false>(d, r, b, len, lane);
    }
  }
}

// The launch shapes. Pipelined (kStages >= 2): 2 thread blocks per SM, so up to 128 registers
// and about 107 KB of shared memory each; stages as many as fit, 4 for two states (2816 bytes a
// block) and 5 for one (2432). On an H100 at 256M f32 params, % of copy with registers only (4
// thread blocks per SM, 64 registers) against the pipeline: Adam 8-bit 78.4 against 91.3,
// Momentum 8-bit 86.5 against 92.0, Lion 8-bit 86.8 against 92.0; 3 and 4 stages for one state
// gave 85.8 and 88.9, a register-held next block 82.2 at best (docs/benchmarks.md). Plain: the
// same kernel without the pipeline, 4 thread blocks per SM, for a device whose thread blocks
// cannot have the pipeline's shared memory (before sm_80 or so).
template <int kN>
struct Pipelined {
  static constexpr int kStages = kN == 1 ? 5 : 4;
  static constexpr int kMinBlocks = 2;
  static constexpr int kDynamicSmem = kWarps * kStages * Stage<kN>::kBytes;
};
struct Plain {
  static constexpr int kStages = 0;
  static constexpr int kMinBlocks = 4;
  static constexpr int kDynamicSmem = 0;
};

template <typename Rule, bool kSkip, int kStages, int kMinBlocks>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    eightbit_kernel(const Desc<Rule>* __restrict__ descs, const ChunkRef* __restrict__ chunks,
                    const CudaQuantMap* __restrict__ gmaps) {
  constexpr int kN = Rule::kNumStates;
  __shared__ SharedMap maps[kN];
  extern __shared__ __align__(16) unsigned char stages[];  // Pipelined<kN>::kDynamicSmem
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
      if (threadIdx.x == 0) {
        maps[k].is_signed = gmaps[k].is_signed;
        maps[k].zero_code = gmaps[k].zero_code;
      }
    }
    __syncthreads();
  }
  switch (d.dtype) {
    case static_cast<int32_t>(DType::kF32):
      run_chunk<Rule, kSkip, float, kStages>(d, c.chunk, maps, gmaps, stages);
      break;
    case static_cast<int32_t>(DType::kBF16):
      run_chunk<Rule, kSkip, BFloat16, kStages>(d, c.chunk, maps, gmaps, stages);
      break;
    default:
      run_chunk<Rule, kSkip, Half, kStages>(d, c.chunk, maps, gmaps, stages);
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

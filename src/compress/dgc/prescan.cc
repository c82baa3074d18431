#include "prescan.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "collect.h"

namespace terse::dgc_detail {
namespace {

constexpr int64_t kBlock = 32;           // one flag per block, one bit mask per flagged block
constexpr int64_t kChunk = 64 * kBlock;  // 8 KB of each of U, V and g: V still in L1

template <bool kNesterov>
__attribute__((always_inline)) inline uint64_t update_flag_blocks(float* __restrict u,
                                                                  float* __restrict v,
                                                                  const float* __restrict g,
                                                                  int64_t blocks, float m,
                                                                  int32_t hint_bits) {
  uint64_t flags = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    float* __restrict ub = u + b * kBlock;
    float* __restrict vb = v + b * kBlock;
    const float* __restrict gb = g + b * kBlock;
    int32_t any = 0;
    for (int64_t j = 0; j < kBlock; ++j) {
      const float ui = kNesterov ? m * (ub[j] + gb[j]) : m * ub[j] + gb[j];
      const float vi = vb[j] + (kNesterov ? ui + gb[j] : ui);
      ub[j] = ui;
      vb[j] = vi;
      int32_t bits;
      std::memcpy(&bits, &vi, sizeof bits);
      any |= static_cast<int32_t>((bits & 0x7fffffff) >= hint_bits);
    }
    flags |= static_cast<uint64_t>(any != 0) << b;
  }
  return flags;
}

// compensate_loop over `blocks` (<= 64) whole blocks, setting bit b of the result when block b
// holds an |V| whose bits are >= hint_bits: every |V| >= hint, and NaN (whose bits are above
// infinity's), a superset that block_mask then sorts out. An integer compare and an OR per element,
// so that with AVX-512 or AVX2 the flags cost little next to the memory traffic; bits as
// DgcMemory::compensate's (no FMA: terse_dgc builds with -ffp-contract=off).
__attribute__((target_clones("avx512f", "avx2", "default"))) uint64_t update_flag(
    float* __restrict u, float* __restrict v, const float* __restrict g, int64_t blocks, float m,
    bool nesterov, int32_t hint_bits) {
  return nesterov ? update_flag_blocks<true>(u, v, g, blocks, m, hint_bits)
                  : update_flag_blocks<false>(u, v, g, blocks, m, hint_bits);
}

// One thread's share [b, e) of compensate_prescan, into out; the list is dropped once it holds
// more than cap entries.
void prescan_range(float* u, float* v, const float* g, int64_t b, int64_t e, float m, bool nesterov,
                   const DgcSamplePlan& plan, int64_t start, float hint, int64_t cap,
                   DgcPrescan& out) {
  out.sample.clear();
  out.nan_at = -1;
  out.has_list = hint > 0.0f;
  out.list_threshold = hint;
  out.list.idx.clear();
  out.list.mag.clear();
  int32_t hint_bits = 0;
  std::memcpy(&hint_bits, &hint, sizeof hint_bits);
  const int64_t stride = plan.stride;
  int64_t p = b <= start ? start : start + (b - start + stride - 1) / stride * stride;
  for (int64_t c = b; c < e; c += kChunk) {
    const int64_t ce = std::min(e, c + kChunk);
    if (out.has_list) {
      const int64_t blocks = (ce - c) / kBlock;
      uint64_t flags = update_flag(u + c, v + c, g + c, blocks, m, nesterov, hint_bits);
      for (; flags != 0; flags &= flags - 1) {
        const int64_t at = c + __builtin_ctzll(flags) * kBlock;
        for (uint32_t bits = block_mask(v + at, hint); bits != 0; bits &= bits - 1) {
          const int64_t i = at + __builtin_ctz(bits);
          out.list.idx.push_back(i);
          out.list.mag.push_back(std::fabs(v[i]));
        }
      }
      const int64_t tail = c + blocks * kBlock;
      compensate_loop(u + tail, v + tail, g + tail, ce - tail, m, nesterov);
      collect_at_least(v, tail, ce, hint, out.list);
      if (static_cast<int64_t>(out.list.idx.size()) > cap) out.has_list = false;
    } else {
      compensate_loop(u + c, v + c, g + c, ce - c, m, nesterov);
    }
    for (; p < ce; p += stride) {
      const float a = std::fabs(v[p]);
      if (std::isnan(a) && out.nan_at < 0) out.nan_at = p;
      out.sample.push_back(a);
    }
  }
}

}  // namespace

void compensate_loop(float* u, float* v, const float* g, int64_t n, float m, bool nesterov) {
  if (nesterov) {
    for (int64_t i = 0; i < n; ++i) {
      const float ui = m * (u[i] + g[i]);
      u[i] = ui;
      v[i] += ui + g[i];
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const float ui = m * u[i] + g[i];
      u[i] = ui;
      v[i] += ui;
    }
  }
}

void compensate_prescan(float* u, float* v, const float* g, int64_t n,
                        const DgcMemoryOptions& options, const DgcSamplePlan& plan, int64_t start,
                        float hint, int threads, DgcStepState& state) {
  // A list past n/16 (+ 4k for tiny tensors) entries costs more to gather than a pass over V.
  const int64_t cap = n / 16 + 4 * plan.num_selects;
  const auto m = static_cast<float>(options.momentum);
  const bool nesterov = options.nesterov;
  const int t = parts_for(n, threads);
  DgcPrescan& out = state.prescan;
  state.parts.resize(static_cast<size_t>(t - 1));
  // Each part's list gets its share of the cap, so the joined list stays within it.
  const int64_t part_cap = t <= 1 ? cap : cap / t + 1;
  for_parts(n, t, [&](int w, int64_t b, int64_t e) {
    DgcPrescan& part = w == 0 ? out : state.parts[static_cast<size_t>(w - 1)];
    prescan_range(u, v, g, b, e, m, nesterov, plan, start, hint, part_cap, part);
  });
  // Joined in index order: the same sample and list as one thread's.
  for (const DgcPrescan& part : state.parts) {
    out.sample.insert(out.sample.end(), part.sample.begin(), part.sample.end());
    if (out.nan_at < 0) out.nan_at = part.nan_at;
    out.has_list = out.has_list && part.has_list;
    if (!out.has_list) continue;
    out.list.idx.insert(out.list.idx.end(), part.list.idx.begin(), part.list.idx.end());
    out.list.mag.insert(out.list.mag.end(), part.list.mag.begin(), part.list.mag.end());
  }
}

}  // namespace terse::dgc_detail

#pragma once

// DgcMemory::step's fused pass: the momentum correction that also gathers, while each chunk of V
// is still in L1, what dgc_select would otherwise read V again for. Private to terse_dgc.

#include <cstdint>

#include "parts.h"
#include "terse/compress/dgc/dgc_memory.h"

namespace terse::dgc_detail {

// U = mU + g, V += U (Nesterov: U = m(U + g), V += U + g) over [0, n), unchecked: the loop the
// compiler vectorises. DgcMemory::compensate's arithmetic, so the same bits.
void compensate_loop(float* u, float* v, const float* g, int64_t n, float m, bool nesterov);

// The same update over [0, n) in `threads` contiguous parts, writing into state.prescan the
// strided sample of |V| from `start` at plan.stride, and, when hint > 0, every index with
// |V| >= hint (has_list false when that list went over n/16 + 4k entries).
void compensate_prescan(float* u, float* v, const float* g, int64_t n,
                        const DgcMemoryOptions& options, const DgcSamplePlan& plan, int64_t start,
                        float hint, int threads, DgcStepState& state);

}  // namespace terse::dgc_detail

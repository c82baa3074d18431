#include "terse/compress/dgc/dgc_memory.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "memory_rules.h"
#include "parts.h"
#include "prescan.h"
#include "terse/core/check.h"

namespace terse {
namespace {

using dgc_detail::check_memory_options;

void check_buffers(const void* a, const void* b, const void* c, int64_t n, const char* what) {
  TERSE_CHECK(n >= 0, InvalidArgument, what, " needs n >= 0, got ", n, "; pass the tensor's numel");
  TERSE_CHECK(n == 0 || (a != nullptr && b != nullptr && c != nullptr), InvalidArgument, what,
              " got a null buffer for ", n, " elements; pass U, V and g of the same size");
}

// DgcMemory::compensate over [0, n) in `threads` contiguous parts. It is element-wise, so any
// split gives the same bits; the threads matter where one core cannot draw the memory
// bandwidth alone (8 ranks x 2 threads on a 16-core host).
void compensate_parallel(float* u, float* v, const float* g, int64_t n,
                         const DgcMemoryOptions& options, int threads) {
  dgc_detail::for_parts(n, dgc_detail::parts_for(n, threads), [&](int, int64_t b, int64_t e) {
    DgcMemory::compensate(u + b, v + b, g + b, e - b, options);
  });
}

}  // namespace

void DgcMemory::compensate(float* u, float* v, const float* g, int64_t n,
                           const DgcMemoryOptions& options) {
  check_memory_options(options);
  check_buffers(u, v, g, n, "DgcMemory::compensate");
  dgc_detail::compensate_loop(u, v, g, n, static_cast<float>(options.momentum), options.nesterov);
}

void DgcMemory::mask(float* u, float* v, int64_t n, const SparseSelection& selection,
                     const DgcMemoryOptions& options) {
  check_buffers(u, v, v, n, "DgcMemory::mask");
  // Validate every index before writing any, so a bad selection leaves U and V untouched.
  for (const int64_t i : selection.indices) {
    TERSE_CHECK(i >= 0 && i < n, InvalidArgument, "DGC mask index ", i, " is outside [0, ", n,
                "); pass a selection made from this buffer");
  }
  for (const int64_t i : selection.indices) v[i] = 0.0f;
  if (options.momentum_masking) {
    for (const int64_t i : selection.indices) u[i] = 0.0f;
  }
}

double DgcMemory::clip(float* g, int64_t n, double max_norm, int num_workers) {
  dgc_detail::check_clip_max_norm(max_norm);
  TERSE_CHECK(num_workers >= 1, InvalidArgument, "DGC clip num_workers must be >= 1, got ",
              num_workers, "; pass the communicator's size");
  check_buffers(g, g, g, n, "DgcMemory::clip");
  double sq = 0.0;
  for (int64_t i = 0; i < n; ++i) sq += static_cast<double>(g[i]) * static_cast<double>(g[i]);
  double norm = 0.0;
  const double coef = dgc_detail::clip_coefficient(sq, n, max_norm, num_workers, norm);
  if (coef < 1.0) {
    const auto c = static_cast<float>(coef);
    for (int64_t i = 0; i < n; ++i) g[i] *= c;
  }
  return norm;
}

SparseSelection DgcMemory::step(float* u, float* v, float* g, int64_t n, double density,
                                uint64_t seed_step, const DgcMemoryOptions& options,
                                const DgcSelectOptions& select_options, DgcStepState* state,
                                DgcStepProfile* profile) {
  dgc_detail::PhaseClock clock(profile != nullptr);
  DgcStepProfile unused;
  DgcStepProfile& prof = profile != nullptr ? *profile : unused;
  if (options.clip_max_norm > 0.0) clip(g, n, options.clip_max_norm, options.num_workers);
  clock.lap(&prof.clip_s);
  check_memory_options(options);
  check_buffers(u, v, g, n, "DgcMemory::step");
  TERSE_CHECK(select_options.threads >= 1, InvalidArgument,
              "DgcMemory::step needs threads >= 1, got ", select_options.threads,
              "; pass 1 for the calling thread only");
  TERSE_CHECK(state == nullptr || (state->list_k >= 1.0 && state->list_k <= 1e6), InvalidArgument,
              "DgcStepState::list_k must be in [1, 1e6], got ", state->list_k,
              "; the default 4 lists about 4k elements");
  const DgcSamplePlan plan = dgc_sample_plan(n, density, select_options.sample_ratio);
  DgcSelectProfile* select_profile = profile != nullptr ? &profile->select : nullptr;
  SparseSelection s;
  if (state == nullptr) {
    compensate_parallel(u, v, g, n, options, select_options.threads);
    clock.lap(&prof.compensate_s);
    s = dgc_select_planned(v, plan, seed_step, select_options, select_profile);
  } else {
    const float hint = state->hint > 0.0f && std::isfinite(state->hint) ? state->hint : 0.0f;
    dgc_detail::compensate_prescan(u, v, g, n, options, plan,
                                   dgc_sample_start(plan, seed_step, select_options), hint,
                                   select_options.threads, *state);
    state->list_overflowed = hint > 0.0f && !state->prescan.has_list;
    clock.lap(&prof.compensate_s);
    state->prescan.next_rank =
        static_cast<int64_t>(std::ceil(state->list_k * static_cast<double>(plan.top_k_samples)));
    state->hint = 0.0f;  // stays 0 when the selection throws
    s = dgc_select_prescanned(v, plan, seed_step, state->prescan, select_options, select_profile);
    state->hint = state->prescan.next_threshold;
  }
  clock.restart();  // the selection timed its own phases
  mask(u, v, n, s, options);
  clock.lap(&prof.mask_s);
  return s;
}

void dgc_dense_momentum(float* u, const float* g, float* out, int64_t n,
                        const DgcMemoryOptions& options) {
  check_memory_options(options);
  check_buffers(u, g, out, n, "dgc_dense_momentum");
  const auto m = static_cast<float>(options.momentum);
  for (int64_t i = 0; i < n; ++i) {
    if (options.nesterov) {
      u[i] = m * (u[i] + g[i]);
      out[i] = u[i] + g[i];
    } else {
      u[i] = m * u[i] + g[i];
      out[i] = u[i];
    }
  }
}

bool dgc_goes_dense(int dim, int64_t numel, int64_t min_sparse_numel) {
  TERSE_CHECK(dim >= 0 && numel >= 0 && min_sparse_numel >= 0, InvalidArgument,
              "dgc_goes_dense needs dim, numel and min_sparse_numel >= 0, got ", dim, ", ", numel,
              ", ", min_sparse_numel, "; pass the tensor's shape");
  return dim <= 1 || numel < min_sparse_numel;
}

}  // namespace terse

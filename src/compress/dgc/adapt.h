#pragma once

// The rules the CPU selection (sparse_selection.cc) and the GPU one (cuda/cuda_dgc_selector.cu)
// share, so that both accept the same arguments and take the same rounds: the argument checks,
// and one decision of the reference's threshold adaptation (dgc/compression.py). Private to
// terse_dgc.

#include <cstdint>

#include "terse/compress/dgc/sparse_selection.h"
#include "terse/core/check.h"

namespace terse::dgc_detail {

// The caller's arguments, checked before anything is read; `who` names the caller.
inline void check_select(const float* x, const DgcSamplePlan& plan, const DgcSelectOptions& options,
                         const char* who) {
  const int64_t n = plan.numel;
  TERSE_CHECK(n >= 1 && plan.stride >= 1 && plan.num_selects >= 1 && plan.top_k_samples >= 1,
              InvalidArgument, "DGC sample plan is not valid (numel ", n, ", stride ", plan.stride,
              ", num_selects ", plan.num_selects, "); build it with dgc_sample_plan");
  TERSE_CHECK(x != nullptr, InvalidArgument, who, " got a null pointer for ", n,
              " elements; pass the tensor's data");
  TERSE_CHECK(
      options.upper_bound >= 1.0 && options.lower_bound > 0.0 && options.lower_bound <= 1.0 &&
          options.max_adaptation_iters >= 0 && options.threads >= 1,
      InvalidArgument,
      "DGC options must satisfy upper >= 1, 0 < lower <= 1, iters >= 0, threads >= 1; got upper ",
      options.upper_bound, ", lower ", options.lower_bound, ", iters ",
      options.max_adaptation_iters, ", threads ", options.threads,
      "; the reference uses 1.3, 0.8, 10");
}

enum class Adapt {
  kDone,      // the count is within bounds (or above k but within upper_bound * k): keep thr
  kResample,  // above upper_bound * k with resample on: exact top-k over the candidates
  kRescan,    // thr was raised (x upper_bound) or lowered (x lower_bound): count again
};

inline Adapt adapt_threshold(int64_t count, int64_t k, const DgcSelectOptions& options,
                             float& thr) {
  const auto c = static_cast<double>(count);
  const auto kd = static_cast<double>(k);
  if (c > kd) {
    if (c <= options.upper_bound * kd) return Adapt::kDone;
    if (options.resample) return Adapt::kResample;
    thr = static_cast<float>(static_cast<double>(thr) * options.upper_bound);
    return Adapt::kRescan;
  }
  if (c < options.lower_bound * kd) {
    thr = static_cast<float>(static_cast<double>(thr) * options.lower_bound);
    return Adapt::kRescan;
  }
  return Adapt::kDone;
}

}  // namespace terse::dgc_detail

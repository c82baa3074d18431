#pragma once

// One decision of the reference's threshold adaptation (dgc/compression.py), shared by the CPU
// selection (sparse_selection.cc) and the GPU one (cuda/cuda_dgc_selector.cu) so that both take
// the same rounds. Private to terse_dgc.

#include <cstdint>

#include "terse/compress/dgc/sparse_selection.h"

namespace terse::dgc_detail {

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

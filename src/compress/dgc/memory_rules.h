#pragma once

// DgcMemory's option checks and local-clipping coefficient, shared by the CPU step
// (dgc_memory.cc) and the GPU one (cuda/cuda_dgc_selector.cu), so both reject the same options
// with the same messages and scale g by the same coefficient. Private to terse_dgc.

#include <cmath>
#include <cstdint>

#include "terse/compress/dgc/dgc_memory.h"
#include "terse/core/check.h"

namespace terse::dgc_detail {

inline void check_memory_options(const DgcMemoryOptions& o) {
  TERSE_CHECK(o.momentum >= 0.0 && o.momentum < 1.0, InvalidArgument,
              "DGC momentum must be in [0, 1), got ", o.momentum,
              "; pass the optimizer's momentum (e.g. 0.9)");
  TERSE_CHECK(o.num_workers >= 1, InvalidArgument, "DGC num_workers must be >= 1, got ",
              o.num_workers, "; pass the communicator's size");
}

inline void check_clip_max_norm(double max_norm) {
  TERSE_CHECK(max_norm > 0.0, InvalidArgument, "DGC clip max_norm must be > 0, got ", max_norm,
              "; pass a positive norm or leave clipping off");
}

// From the sum of squares of g's n elements: the norm (NumericalError when not finite) and the
// scale that brings it to max_norm / sqrt(num_workers), torch's clip_grad_norm_ rule (applied
// only when below 1).
inline double clip_coefficient(double sum_squares, int64_t n, double max_norm, int num_workers,
                               double& norm) {
  norm = std::sqrt(sum_squares);
  TERSE_CHECK(std::isfinite(norm), NumericalError, "DGC local clipping saw gradient norm ", norm,
              " over ", n, " elements; the gradient diverged: lower the learning rate");
  const double limit = max_norm / std::sqrt(static_cast<double>(num_workers));
  return limit / (norm + 1e-6);
}

}  // namespace terse::dgc_detail

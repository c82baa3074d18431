#pragma once

#include <string>
#include <vector>

#include "terse/core/dtype.h"

namespace terse_bench {

// One optimizer of the benchmark: how it is built and how many bytes one step must move.
// Bytes per parameter per step = param_streams * sizeof(param dtype) + state_bytes, the spec's
// optimizers.md §19 count (f32: 3 * 4 + states) extended by the passes an implementation really
// makes (AdamP/SGDP's projection pass, Lookahead's every-k sync) where §19 only footnotes them.
struct OptimEntry {
  static constexpr double kMeasuredState = -1;

  const char* name;      // registry name (terse::optimizer_names())
  const char* spec;      // option string for terse::make_optimizer (typical hyper-parameters)
  double param_streams;  // param and grad elements moved per step: read p, read g, write p = 3
  double state_bytes;    // state bytes read + written per param per step (any param dtype), or
                         // kMeasuredState: 2 * the optimizer's state_bytes() / params
  int twin_states;       // traffic twin: number of state streams; 0 = no one-pass twin fits
  int twin_state_size;   // bytes per twin state element: 4 (f32) or 1 (8-bit codes)
  int rows;              // tensors shaped [rows, n / rows] (per-row / matrix math); 0 = 1-D
  int steps_per_call;    // steps timed as one call, so every-k-steps work is amortised
  const char* note;      // why the traffic or the timing differs from a plain one-pass step

  // `state_per_param`: the optimizer's state_bytes() / params, used for kMeasuredState.
  double bytes_per_param(terse::DType dtype, double state_per_param) const {
    return param_streams * static_cast<double>(terse::dtype_size(dtype)) +
           (state_bytes == kMeasuredState ? 2 * state_per_param : state_bytes);
  }

  // Every optimizer the benchmark knows, registered in this build or not.
  static const std::vector<OptimEntry>& table();
  // The entry of `name`, or nullptr.
  static const OptimEntry* find(const std::string& name);
};

}  // namespace terse_bench

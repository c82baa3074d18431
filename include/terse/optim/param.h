#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "terse/core/tensor_view.h"

namespace terse {

// One tensor an Optimizer updates: its values (updated in place) and its gradient (read).
// `shape` is row-major; optimizers with per-row or matrix math (AdamP, Muon) need it, the
// element-wise ones only use numel.
struct Param {
  TensorView value;
  TensorView grad;
  std::vector<int64_t> shape;
  std::string name;
};

}  // namespace terse

#pragma once

// Shared by the optimizer unit tests: parameter buffers, state-dict readers and the check of a
// rejected spec.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "terse/core/state_dict.h"
#include "terse/optim/optimizer.h"

namespace terse::test {

// A 1-D parameter over owned value and gradient buffers (the same size).
struct Buffers {
  std::vector<float> value, grad;
  Param param(const std::string& name = "") {
    return Param{TensorView::of(value.data(), static_cast<int64_t>(value.size())),
                 TensorView::of(grad.data(), static_cast<int64_t>(grad.size())),
                 {static_cast<int64_t>(value.size())},
                 name};
  }
};

// A parameter of the given shape over owned buffers (for optimizers that read the shape).
struct Shaped {
  std::vector<int64_t> shape;
  std::vector<float> value, grad;
  Param param(const std::string& name = "") {
    return Param{TensorView::of(value.data(), static_cast<int64_t>(value.size())),
                 TensorView::of(grad.data(), static_cast<int64_t>(grad.size())), shape, name};
  }
};

// State tensor `key` of a state dict as floats.
inline std::vector<float> state_floats(const StateDict& sd, const std::string& key) {
  const StateTensor& t = sd.tensor(key);
  std::vector<float> v(static_cast<size_t>(t.numel()));
  t.copy_to(TensorView::of(v.data(), t.numel()), key);
  return v;
}

// State tensor `key` that holds one element (copy_to throws when it holds another count).
inline float state_scalar(const StateDict& sd, const std::string& key) {
  float v = 0;
  sd.tensor(key).copy_to(TensorView::of(&v, 1), key);
  return v;
}

// Expects make_optimizer(spec) to throw InvalidArgument whose message contains every one of
// `parts`.
inline void expect_invalid(const std::string& spec, const std::vector<std::string>& parts) {
  Buffers b{{1.0f}, {1.0f}};
  try {
    make_optimizer(spec, {b.param()});
    ADD_FAILURE() << spec << " was accepted";
  } catch (const InvalidArgument& e) {
    for (const auto& p : parts) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
          << spec << ": message lacks '" << p << "': " << e.what();
    }
  }
}

}  // namespace terse::test

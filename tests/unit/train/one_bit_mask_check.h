#pragma once

// The momentum-mask check shared by the 1-bit optimizers' tests.

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "terse/comm/local_communicator.h"
#include "terse/optim/optimizer.h"

namespace terse::test {

// On 2 ranks, odd coordinates never get a gradient (a dead unit, an unused embedding row), so
// their v stays 0. One bit cannot say 0: their all-reduced values are +-scale, and the momentum
// mask must keep them exactly where they were; the even ones, with a positive gradient, must
// end below `moved_below` after `steps` steps of Opt(comm, options, groups).
template <class Opt>
void expect_coordinates_without_gradient_stay_put(const OptionMap& options, int steps,
                                                  float moved_below) {
  const int64_t n = 64;
  run_local_ranks(2, [&](Communicator& comm) {
    std::vector<float> value(n, 0.5f), grad(n, 0.0f);
    std::vector<ParamGroup> groups(1);
    groups[0].params.push_back(
        Param{TensorView::of(value.data(), n), TensorView::of(grad.data(), n), {n}, "w"});
    Opt opt(comm, options, groups);
    for (int t = 0; t < steps; ++t) {
      for (int64_t i = 0; i < n; ++i) {
        grad[static_cast<size_t>(i)] = i % 2 == 0 ? 0.1f * static_cast<float>(1 + i % 5) : 0.0f;
      }
      opt.step();
    }
    for (int64_t i = 0; i < n; ++i) {
      if (i % 2 == 1) {
        EXPECT_EQ(value[static_cast<size_t>(i)], 0.5f) << i;
      } else {
        EXPECT_LT(value[static_cast<size_t>(i)], moved_below) << i;
      }
    }
  });
}

}  // namespace terse::test

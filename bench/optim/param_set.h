#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "terse/core/dtype.h"
#include "terse/core/philox.h"
#include "terse/optim/param.h"

namespace terse_bench {

// Params and grads of one dtype (random, fixed seed) and the terse::Param views of them.
template <typename T>
struct ParamSet {
  std::vector<std::vector<T>> values, grads;
  std::vector<terse::Param> params;

  ParamSet(const std::vector<int64_t>& sizes, int rows) {
    terse::PhiloxStream rng(1, 0);
    for (const int64_t n : sizes) {
      values.emplace_back(static_cast<size_t>(n));
      grads.emplace_back(static_cast<size_t>(n));
      for (int64_t e = 0; e < n; ++e) {
        terse::store_from_float(values.back().data(), e, rng.uniform() - 0.5f);
        terse::store_from_float(grads.back().data(), e, rng.uniform() * 1e-3f);
      }
    }
    for (size_t i = 0; i < values.size(); ++i) {
      const auto n = static_cast<int64_t>(values[i].size());
      std::vector<int64_t> shape = {n};
      if (rows > 0) shape = {rows, n / rows};
      params.push_back(terse::Param{terse::TensorView::of(values[i].data(), n),
                                    terse::TensorView::of(grads[i].data(), n), shape,
                                    "t" + std::to_string(i)});
    }
  }
};

}  // namespace terse_bench

#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "optim/timing.h"
#include "terse/core/dtype.h"

// The libtorch comparison, built only with libtorch (TERSE_BENCH_TORCH); torch::optim has only
// sgd, adam and adamw of terse's optimizers, run with the hyper-parameters of their table rows.
namespace terse_bench {

bool torch_has(const std::string& name);
void torch_set_threads(int threads);
// Best and median of `reps` torch::optim steps over tensors of `sizes` (after one warm-up).
Timing torch_step_time(const std::string& name, const std::vector<int64_t>& sizes, int reps,
                       terse::DType dtype);

}  // namespace terse_bench

#include "optim/torch_step.h"

#include <torch/torch.h>

#include <memory>

namespace terse_bench {

bool torch_has(const std::string& name) {
  return name == "sgd" || name == "adam" || name == "adamw";
}

void torch_set_threads(int threads) { torch::set_num_threads(threads); }

Timing torch_step_time(const std::string& name, const std::vector<int64_t>& sizes, int reps,
                       terse::DType dtype) {
  torch::manual_seed(1);
  const auto type = dtype == terse::DType::kBF16  ? torch::kBFloat16
                    : dtype == terse::DType::kF16 ? torch::kHalf
                                                  : torch::kFloat;
  std::vector<torch::Tensor> params;
  for (const int64_t n : sizes) {
    auto p = (torch::rand({n}) - 0.5).to(type);
    p.set_requires_grad(true);
    p.mutable_grad() = (torch::rand({n}) * 1e-3).to(type);
    params.push_back(p);
  }
  std::unique_ptr<torch::optim::Optimizer> opt;
  if (name == "sgd") {
    opt = std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(0.01).momentum(0.9));
  } else if (name == "adam") {
    opt = std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(0.001));
  } else {
    opt = std::make_unique<torch::optim::AdamW>(
        params, torch::optim::AdamWOptions(0.001).weight_decay(0.01));
  }
  torch::NoGradGuard no_grad;
  return time_calls(reps, [&] { opt->step(); });
}

}  // namespace terse_bench

#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/optim/optimizer.h>

#include "terse/core/state_dict.h"
#include "terse/optim/optimizer.h"

namespace terse::torch_adapter {

// Options of a terse optimizer inside torch's param groups: the OptimizerSpec text and the
// learning rate, which torch code (and torch LR schedulers) read and write via get_lr/set_lr.
class OptimizerOptions : public torch::optim::OptimizerCloneableOptions<OptimizerOptions> {
 public:
  // `spec` as for make_optimizer: "sgd:lr=0.1,momentum=0.9". Throws InvalidArgument.
  explicit OptimizerOptions(const std::string& spec);
  const OptimizerSpec& spec() const { return spec_; }
  double get_lr() const override { return lr_; }
  void set_lr(const double lr) override { lr_ = lr; }

 private:
  friend class Optimizer;
  OptimizerSpec spec_;
  double lr_ = 0;
};

// Any terse optimizer as a torch::optim::Optimizer, for libtorch C++ training loops:
//
//   terse::torch_adapter::Optimizer opt(model->parameters(), "adamw:lr=1e-3,weight_decay=0.01");
//   opt.zero_grad(); loss.backward(); opt.step();
//
// step() reads each parameter's .grad() (an undefined gradient counts as zero, so momentum
// and weight decay still apply, unlike torch's optimizers which skip such parameters), applies
// the per-group lr from param_groups()[g].options().get_lr(), and runs one fused terse update
// in place on the parameters' storage. Parameters must be contiguous CPU f32/bf16/f16 tensors
// whose storage stays where it is (no set_data). save()/load() store the terse state dict, so
// torch::save(optimizer, path) and torch::load(optimizer, path) work.
class Optimizer : public torch::optim::Optimizer {
 public:
  Optimizer(std::vector<at::Tensor> params, const std::string& spec);
  // Groups may carry their own OptimizerOptions (other hyper-parameters, e.g. no weight decay
  // for biases); groups without options use `spec`.
  Optimizer(std::vector<torch::optim::OptimizerParamGroup> groups, const std::string& spec);

  at::Tensor step(LossClosure closure = nullptr) override;

  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

  StateDict state_dict() const { return inner_->state_dict(); }
  void load_state_dict(const StateDict& state);
  ::terse::Optimizer& inner() { return *inner_; }
  const ::terse::Optimizer& inner() const { return *inner_; }

 private:
  void sync_lr_to_groups();

  std::unique_ptr<::terse::Optimizer> inner_;
  std::vector<at::Tensor> params_;  // flattened over groups, in group order
  std::vector<at::Tensor> grads_;   // what inner_ reads as gradients
};

}  // namespace terse::torch_adapter

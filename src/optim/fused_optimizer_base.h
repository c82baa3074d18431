#pragma once

// What every element-wise optimizer shares, whatever its Rule: on top of GroupedOptimizerBase
// (groups, lr and schedules, options(), the state dict's header), lazily allocated full-size f32
// state per state name, the per-tensor scalar and global-norm hooks, state_dict and state_bytes.
// FusedOptimizer<Def> (fused_optimizer.h) adds the typed hyper-parameters and step.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "group_options.h"
#include "grouped_optimizer_base.h"
#include "option_def.h"
#include "state_buffer.h"
#include "terse/optim/optimizer.h"

namespace terse::optim_detail {

struct FusedGroup {
  double lr = 0;
  double base_lr = 0;
  OptionMap given;  // options and overrides as written, for options()
  std::vector<Param> params;
  // states[i][k]: state k (state_names order) of params[i], on the params' device; empty until
  // the first step.
  std::vector<std::vector<StateBuffer>> states;
  // tensor_scalars[i]: the per-tensor scalar of params[i] (see tensor_scalar_name()); empty
  // until the first step, and always when the optimizer keeps none.
  std::vector<float> tensor_scalars;
};

class FusedOptimizerBase : public GroupedOptimizerBase<FusedGroup> {
 public:
  void step() override;
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;
  size_t state_bytes() const override;

 protected:
  using Group = FusedGroup;

  FusedOptimizerBase(const char* name, const std::vector<OptionDef>& defs)
      : GroupedOptimizerBase(name, defs) {}

  // Called once from the derived constructor: per group, merges the overrides, calls
  // parse(options) (which validates and keeps the typed values), then checks the parameters.
  // cuda_capable: the derived optimizer's step runs on CUDA tensors (then every parameter must
  // be on one device, CPU or one GPU); otherwise every parameter must be on the CPU.
  void add_groups(const OptionMap& options, std::vector<ParamGroup> groups,
                  const std::function<void(const GroupOptions&)>& parse, bool cuda_capable = false);

  // The device of every parameter (CPU when there are none).
  Device device() const { return device_; }

  // Names of the state buffers of `group`, in the order the Rule takes them (torch's names).
  virtual std::vector<std::string> state_names(size_t group) const = 0;
  // Runs step `t` (1-based) over every group; states are allocated already.
  virtual void run_step(int64_t t) = 0;
  // Optional per-tensor scalar (SGD-SaI's g-SNR): its state-dict name, or nullptr (the default)
  // when the optimizer keeps none. When named, step() calls tensor_scalars() once per group at
  // the first step, from the first gradients, before run_step: one value per param of the
  // group, computed where the params are (CPU or GPU). A value is state (state_dict
  // "state.K.<name>", 1 element; state_bytes) and must be finite and >= 0 (checked on load).
  virtual const char* tensor_scalar_name() const { return nullptr; }
  virtual std::vector<float> tensor_scalars(size_t /*group*/) const { return {}; }

  // L2 norm of every gradient of every group, accumulated in double in a fixed order (the same
  // result for any thread count), for optimizers that clip by the global gradient norm.
  double global_grad_norm() const;

 private:
  Device device_ = Device::cpu();
};

}  // namespace terse::optim_detail

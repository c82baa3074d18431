#pragma once

// What the optimizers that are not element-wise share (muon, auon, frugal): on top of
// GroupedOptimizerBase (groups, lr and schedules, options() with word-valued options beside the
// typed ones, the state dict's header), state_dict / state_bytes over per-parameter buffers whose
// names and sizes may differ from parameter to parameter (Muon's aux Adam, FRUGAL's subspace
// moments). FusedOptimizerBase keeps one fixed set of full-size buffers per group, which these
// optimizers cannot use. Parameters may be CPU or CUDA tensors, all on one device; the buffers
// live on that device (state_buffer.h) and state_dict() copies them to the host, so a state dict
// saved on one device loads on the other.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "group_options.h"
#include "grouped_optimizer_base.h"
#include "option_def.h"
#include "state_buffer.h"
#include "terse/core/device.h"
#include "terse/optim/optimizer.h"

namespace terse::optim_detail {

struct MatrixBuffer {
  std::string name;  // torch's / the official code's name ("momentum_buffer", "exp_avg")
  StateBuffer data;  // on the parameters' device
};

struct MatrixGroup {
  double lr = 0;
  double base_lr = 0;
  OptionMap given;  // options and overrides as written, for options()
  std::vector<Param> params;
  std::vector<std::vector<MatrixBuffer>> states;  // states[i]: buffers of params[i]
};

class MatrixOptimizerBase : public GroupedOptimizerBase<MatrixGroup> {
 public:
  void step() override;
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;
  size_t state_bytes() const override;

 protected:
  using Buffer = MatrixBuffer;
  using Group = MatrixGroup;
  // (name, number of floats) of one parameter's buffers.
  using Layout = std::vector<std::pair<std::string, size_t>>;

  MatrixOptimizerBase(const char* name, std::vector<OptionDef> defs,
                      std::vector<WordOptionDef> words)
      : GroupedOptimizerBase(name, std::move(defs), std::move(words)) {}

  // Called once from the derived constructor: per group, merges the overrides, calls
  // parse(options, words) (which validates and keeps the typed values), checks the parameters
  // (every one on one device, CPU or one GPU).
  void add_groups(const OptionMap& options, std::vector<ParamGroup> groups,
                  const std::function<void(const GroupOptions&, const WordOptions&)>& parse);

  // The device of every parameter (CPU when there are none).
  Device device() const { return device_; }
  // A zeroed buffer of `size` floats on that device.
  Buffer make_buffer(const std::string& name, size_t size) const {
    return Buffer{name, StateBuffer(device_, size)};
  }

  // Runs step `t` (1-based); allocates state as it needs it.
  virtual void run_step(int64_t t) = 0;
  // The buffers params[i] of `group` holds after `steps` >= 1 steps, in order; load checks them.
  virtual Layout state_layout(size_t group, size_t i, int64_t steps) const = 0;
  // After a load has replaced the buffers: rebuild what derives from the step count.
  virtual void after_load(int64_t /*steps*/) {}
  // State memory besides the float buffers (FRUGAL's subspace masks).
  virtual size_t extra_state_bytes() const { return 0; }

  // Number of dimensions as the optimizers see it: an empty shape is 1-D.
  static size_t ndim(const Param& p) { return p.shape.empty() ? 1 : p.shape.size(); }
  // lr(group) / base_lr(group), or 1 when base_lr is 0: the schedule's factor, for options
  // such as Muon's adam_lr that follow the group's schedule.
  double lr_factor(size_t group) const;

 private:
  Device device_ = Device::cpu();
};

}  // namespace terse::optim_detail

#pragma once

// The element-wise optimizers (sgd, adam, adamw) behind terse/optim/optimizer.h: option parsing
// and validation per group, lazily allocated f32 state, one fused CPU pass per step.

#include <cstdint>
#include <string>
#include <vector>

#include "terse/optim/optimizer.h"

namespace terse::optim_detail {

enum class Kind { kSgd, kAdam, kAdamW };

// Every hyper-parameter any of the kinds uses; each kind reads only its own.
struct Hyper {
  double lr = 1e-3;
  double momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false, maximize = false, amsgrad = false;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

enum class OptionType { kDouble, kBool, kPair };
struct OptionDef {
  const char* name;
  OptionType type;
  const char* default_value;  // torch.optim's default
};

struct KindInfo {
  Kind kind;
  const char* name;
  std::vector<OptionDef> options;
};

const KindInfo& kind_info(Kind kind);
// Throws InvalidArgument for an unknown name, listing the known ones.
Kind kind_from_name(const std::string& name);

class FusedOptimizer final : public Optimizer {
 public:
  FusedOptimizer(Kind kind, const OptionMap& options, std::vector<ParamGroup> groups);

  const char* name() const override { return info_.name; }
  void step() override;
  int64_t step_count() const override { return step_count_; }
  size_t num_groups() const override { return groups_.size(); }
  double lr(size_t group) const override;
  void set_lr(double lr, size_t group) override;
  void scale_lr(double factor) override;
  double base_lr(size_t group) const override;
  OptionMap options(size_t group) const override;
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;
  size_t state_bytes() const override;

 private:
  struct Group {
    Hyper hyper;
    double base_lr = 0;
    OptionMap given;  // options and overrides as written, for options()
    std::vector<Param> params;
    // states[i][k]: state k (state_names order) of params[i]; empty until the first step.
    std::vector<std::vector<std::vector<float>>> states;
  };

  Hyper parse_group(const OptionMap& given, size_t group) const;
  std::vector<std::string> state_names(const Hyper& h) const;
  const Group& group_at(size_t group, const char* caller) const;
  void check_lr(double lr, const char* what) const;

  const KindInfo& info_;
  std::vector<Group> groups_;
  int64_t step_count_ = 0;
};

}  // namespace terse::optim_detail

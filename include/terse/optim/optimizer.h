#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "terse/core/state_dict.h"
#include "terse/optim/param.h"

namespace terse {

// Hyper-parameters of one parameter group, by torch.optim name ("lr", "momentum", "betas",
// "weight_decay", ...). Values are strings as given ("0.9", "0.9/0.999", "true"); each
// optimizer parses, defaults and validates them, and rejects names it does not know.
using OptionMap = std::map<std::string, std::string>;

// A set of parameters sharing hyper-parameters (torch.optim's param_groups). `overrides` are
// applied on top of the optimizer's options for this group only.
struct ParamGroup {
  std::vector<Param> params;
  OptionMap overrides;
};

// The optimizer front end. step() runs one fused pass per tensor (a Rule executed by the CPU
// multi-tensor loop, later by the CUDA launcher). Gradients are read as they are: averaging
// across ranks happens before step().
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Registry name ("sgd", "adam", "adamw").
  virtual const char* name() const = 0;
  // Applies one update to every parameter of every group.
  virtual void step() = 0;
  // Number of completed step() calls.
  virtual int64_t step_count() const = 0;

  virtual size_t num_groups() const = 0;
  // Learning rate of a group; schedules call set_lr every step.
  virtual double lr(size_t group = 0) const = 0;
  virtual void set_lr(double lr, size_t group) = 0;
  // Sets every group's lr to base_lr(group) * factor; base_lr is the lr it was built with.
  virtual void scale_lr(double factor) = 0;
  virtual double base_lr(size_t group = 0) const = 0;

  // Every hyper-parameter of a group after defaults and overrides, as strings, for logs.
  virtual OptionMap options(size_t group = 0) const = 0;

  // All state (step counts, moments, per-group lr) as plain data. load_state_dict validates
  // names, dtypes and sizes against this optimizer's parameters and throws CorruptData or
  // InvalidArgument on any mismatch, leaving the optimizer unchanged.
  virtual StateDict state_dict() const = 0;
  virtual void load_state_dict(const StateDict& state) = 0;

  // Bytes of optimizer state currently allocated (moments, buffers; not params or grads).
  virtual size_t state_bytes() const = 0;

 protected:
  Optimizer() = default;
};

// Parsed "name:key=value,key=value" (e.g. "sgd:lr=0.1,momentum=0.9").
struct OptimizerSpec {
  std::string name;
  OptionMap options;
  static OptimizerSpec parse(const std::string& text);  // throws InvalidArgument
  std::string str() const;
};

// Builds a registered optimizer. Throws InvalidArgument for an unknown name (listing the known
// ones), an unknown option (listing the valid ones) or an out-of-range value (naming it).
std::unique_ptr<Optimizer> make_optimizer(const OptimizerSpec& spec, std::vector<ParamGroup> groups);
std::unique_ptr<Optimizer> make_optimizer(const std::string& spec, std::vector<Param> params);
std::vector<std::string> optimizer_names();

}  // namespace terse

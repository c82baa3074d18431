#pragma once

// What every optimizer over torch-style parameter groups shares, whatever it keeps per
// parameter: its name and options (typed and word-valued), the groups (lr, base lr, options as
// given, parameters, each checked by check_param), the step count, lr / set_lr / scale_lr /
// base_lr, options(), and the state dict's header — "optimizer", "step_count", "num_groups",
// "group.G.num_params", "group.G.lr", "param.K.name" — with its checks on load.
// FusedOptimizerBase (full-size f32 buffers per state name) and MatrixOptimizerBase (buffers of
// any size per parameter) derive from it with their own Group, which must have the members
// lr, base_lr, given (OptionMap), params (std::vector<Param>) and states.

#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "option_def.h"
#include "option_values.h"
#include "param_checks.h"
#include "terse/core/check.h"
#include "terse/core/state_dict.h"
#include "terse/optim/optimizer.h"

namespace terse::optim_detail {

template <typename Group>
class GroupedOptimizerBase : public Optimizer {
 public:
  const char* name() const override { return name_; }
  int64_t step_count() const override { return step_count_; }
  size_t num_groups() const override { return groups_.size(); }
  double lr(size_t group) const override { return group_at(group, "lr").lr; }
  double base_lr(size_t group) const override { return group_at(group, "base_lr").base_lr; }

  void set_lr(double lr, size_t group) override {
    group_at(group, "set_lr");
    TERSE_CHECK(std::isfinite(lr) && lr >= 0, InvalidArgument, name_,
                ".set_lr: lr must be a finite number >= 0, got ", lr);
    groups_[group].lr = lr;
  }

  void scale_lr(double factor) override {
    TERSE_CHECK(std::isfinite(factor) && factor >= 0, InvalidArgument, name_,
                ".scale_lr: factor must be a finite number >= 0, got ", factor);
    for (auto& grp : groups_) grp.lr = grp.base_lr * factor;
  }

  OptionMap options(size_t group) const override {
    const Group& grp = group_at(group, "options");
    OptionMap out;
    const auto given = [&](const char* name, const char* default_value) {
      const auto it = grp.given.find(name);
      out[name] = it == grp.given.end() ? default_value : trim(it->second);
    };
    for (const auto& d : defs_) given(d.name, d.default_value);
    for (const auto& w : words_) given(w.name, w.default_value);
    // Normalise numbers so logs show what is used, and lr as it is now (schedules change it).
    out["lr"] = format_double(grp.lr);
    describe(group, out);
    return out;
  }

 protected:
  GroupedOptimizerBase(const char* name, std::vector<OptionDef> defs,
                       std::vector<WordOptionDef> words = {})
      : name_(name), defs_(std::move(defs)), words_(std::move(words)) {}

  // Adds the normalised optimizer-specific options (lr is done) to `out`, for options().
  virtual void describe(size_t group, OptionMap& out) const = 0;

  const std::vector<OptionDef>& option_defs() const { return defs_; }
  const std::vector<WordOptionDef>& word_defs() const { return words_; }

  const Group& group_at(size_t group, const char* caller) const {
    TERSE_CHECK(group < groups_.size(), InvalidArgument, name_, ".", caller, ": group ", group,
                " does not exist; this optimizer has ", groups_.size(), " group(s)");
    return groups_[group];
  }

  // Appends group `grp` (lr, base_lr and given already set) with `params`, each checked
  // (check_param; `seen` spans the groups of one constructor call), and one empty state per
  // parameter.
  void add_group(Group grp, std::vector<Param> params, std::set<const void*>& seen,
                 bool allow_cuda = false) {
    const size_t g = groups_.size();
    for (size_t i = 0; i < params.size(); ++i) {
      check_param(name_, params[i], g, i, seen, allow_cuda);
    }
    grp.params = std::move(params);
    grp.states.resize(grp.params.size());
    groups_.push_back(std::move(grp));
  }

  // The header part of state_dict().
  void save_header(StateDict& sd) const {
    sd.strings["optimizer"] = name_;
    sd.ints["step_count"] = step_count_;
    sd.ints["num_groups"] = static_cast<int64_t>(groups_.size());
    size_t k = 0;
    for (size_t g = 0; g < groups_.size(); ++g) {
      const Group& grp = groups_[g];
      const std::string gp = "group." + std::to_string(g) + ".";
      sd.ints[gp + "num_params"] = static_cast<int64_t>(grp.params.size());
      sd.floats[gp + "lr"] = grp.lr;
      for (size_t i = 0; i < grp.params.size(); ++i, ++k) {
        const Param& p = grp.params[i];
        if (!p.name.empty()) sd.strings["param." + std::to_string(k) + ".name"] = p.name;
      }
    }
  }

  struct Header {
    int64_t steps = 0;
    std::vector<double> lrs;  // per group
  };

  // Checks the header of `sd` against this optimizer (name, groups, parameter counts and names)
  // and returns its step count and lrs; changes nothing. Throws InvalidArgument for another
  // optimizer or model, CorruptData for impossible values.
  Header load_header(const StateDict& sd) const {
    const std::string& saved = sd.string_value("optimizer");
    TERSE_CHECK(saved == name_, InvalidArgument, "load_state_dict: the state dict is from ",
                "optimizer '", saved, "' but this optimizer is '", name_,
                "'; build the same optimizer that saved it");
    Header h;
    h.steps = sd.int_value("step_count");
    TERSE_CHECK(h.steps >= 0, CorruptData, "load_state_dict: step_count is ", h.steps,
                "; the state dict is damaged");
    const int64_t ng = sd.int_value("num_groups");
    TERSE_CHECK(ng == static_cast<int64_t>(groups_.size()), InvalidArgument,
                "load_state_dict: the state dict has ", ng, " parameter group(s), this ", name_,
                " has ", groups_.size(), "; build it with the same groups");
    h.lrs.resize(groups_.size());
    size_t k = 0;
    for (size_t g = 0; g < groups_.size(); ++g) {
      const Group& grp = groups_[g];
      const std::string gp = "group." + std::to_string(g) + ".";
      const int64_t np = sd.int_value(gp + "num_params");
      TERSE_CHECK(np == static_cast<int64_t>(grp.params.size()), InvalidArgument,
                  "load_state_dict: group ", g, " has ", np, " parameter(s) in the state dict but ",
                  grp.params.size(), " here; build the optimizer over the same model");
      h.lrs[g] = sd.float_value(gp + "lr");
      TERSE_CHECK(std::isfinite(h.lrs[g]) && h.lrs[g] >= 0, CorruptData, "load_state_dict: group ",
                  g, " has lr ", h.lrs[g], "; the state dict is damaged");
      for (size_t i = 0; i < grp.params.size(); ++i, ++k) {
        const Param& p = grp.params[i];
        const auto it = sd.strings.find("param." + std::to_string(k) + ".name");
        TERSE_CHECK(it == sd.strings.end() || p.name.empty() || it->second == p.name,
                    InvalidArgument, "load_state_dict: parameter ", k, " was saved as '",
                    it == sd.strings.end() ? "" : it->second, "' but here it is '", p.name,
                    "'; load into the same model");
      }
    }
    return h;
  }

  // Throws InvalidArgument unless `sd` holds exactly `used` "state." tensors; `options_hint`
  // names what may differ ("momentum or amsgrad").
  void check_state_count(const StateDict& sd, size_t used, const char* options_hint) const {
    size_t state_tensors = 0;
    for (const auto& [key, t] : sd.tensors) state_tensors += key.rfind("state.", 0) == 0 ? 1 : 0;
    TERSE_CHECK(state_tensors == used, InvalidArgument, "load_state_dict: the state dict holds ",
                state_tensors, " state tensor(s) but this ", name_, " uses ", used,
                " with its options", options_hint, "; load with the options it was saved with");
  }

  // After load_header and the derived checks passed: takes the header's lrs and step count.
  void apply_header(const Header& h) {
    for (size_t g = 0; g < groups_.size(); ++g) groups_[g].lr = h.lrs[g];
    step_count_ = h.steps;
  }

  std::vector<Group> groups_;
  int64_t step_count_ = 0;

 private:
  const char* name_;
  std::vector<OptionDef> defs_;
  std::vector<WordOptionDef> words_;
};

}  // namespace terse::optim_detail

#include "matrix_optimizer_base.h"

#include <cmath>
#include <set>
#include <utility>

#include "option_values.h"
#include "terse/core/check.h"

namespace terse::optim_detail {
namespace {

std::string param_label(const Param& p, size_t group, size_t index) {
  std::string s = "param " + std::to_string(index) + " of group " + std::to_string(group);
  if (!p.name.empty()) s += " ('" + p.name + "')";
  return s;
}

void check_param(const char* who, const Param& p, const std::string& label) {
  TERSE_CHECK(
      p.value.dtype == DType::kF32 || p.value.dtype == DType::kBF16 || p.value.dtype == DType::kF16,
      InvalidArgument, who, ": ", label, " has dtype ", dtype_name(p.value.dtype),
      "; parameters must be f32, bf16 or f16");
  TERSE_CHECK(p.value.device.is_cpu() && p.grad.device.is_cpu(), InvalidArgument, who, ": ", label,
              " is on ", p.value.device.str(), " (grad on ", p.grad.device.str(),
              "); this optimizer steps CPU tensors; move the parameters to the CPU");
  TERSE_CHECK(p.grad.numel == p.value.numel && p.grad.dtype == p.value.dtype, InvalidArgument, who,
              ": ", label, " is ", p.value.numel, " x ", dtype_name(p.value.dtype),
              " but its grad is ", p.grad.numel, " x ", dtype_name(p.grad.dtype),
              "; the gradient must match the parameter");
  TERSE_CHECK(p.value.numel == 0 || (p.value.data != nullptr && p.grad.data != nullptr),
              InvalidArgument, who, ": ", label, " has ", p.value.numel,
              " elements but a null value or grad pointer; allocate both first");
  if (!p.shape.empty()) {
    int64_t n = 1;
    for (int64_t d : p.shape) {
      TERSE_CHECK(d >= 0, InvalidArgument, who, ": ", label, " has a negative dimension ", d,
                  "; fix the shape");
      n *= d;
    }
    TERSE_CHECK(n == p.value.numel, InvalidArgument, who, ": ", label, " has a shape with ", n,
                " elements but numel ", p.value.numel, "; fix the shape");
  }
}

}  // namespace

void MatrixOptimizerBase::add_groups(
    const OptionMap& options, std::vector<ParamGroup> groups,
    const std::function<void(const GroupOptions&, const WordOptions&)>& parse) {
  TERSE_CHECK(!groups.empty(), InvalidArgument, name_,
              ": got no parameter groups; pass at least one parameter");
  std::vector<std::string> all_names;
  for (const auto& d : defs_) all_names.push_back(d.name);
  for (const auto& w : words_) all_names.push_back(w.name);
  std::set<const void*> seen;
  for (size_t g = 0; g < groups.size(); ++g) {
    Group grp;
    grp.given = options;
    for (const auto& [k, v] : groups[g].overrides) grp.given[k] = v;
    // Word options are taken out here; GroupOptions parses the typed rest.
    OptionMap typed = grp.given;
    WordOptions words;
    const std::string who = std::string(name_) + " (group " + std::to_string(g) + ")";
    for (const auto& w : words_) {
      const auto it = typed.find(w.name);
      const std::string value = it == typed.end() ? w.default_value : trim(it->second);
      if (it != typed.end()) typed.erase(it);
      bool ok = false;
      for (const auto& a : w.allowed) ok = ok || a == value;
      TERSE_CHECK(ok, InvalidArgument, who, ": option '", w.name, "' is '", value,
                  "'; use one of: ", join(w.allowed, ", "));
      words[w.name] = value;
    }
    for (const auto& [key, value] : typed) {
      bool known = false;
      for (const auto& d : defs_) known = known || key == d.name;
      TERSE_CHECK(known, InvalidArgument, who, ": unknown option '", key, "' (= '", value,
                  "'); valid options for ", name_, " are: ", join(all_names, ", "));
    }
    const GroupOptions parsed(name_, defs_, typed, g);
    parse(parsed, words);
    grp.lr = parsed.lr();
    grp.base_lr = grp.lr;
    for (size_t i = 0; i < groups[g].params.size(); ++i) {
      const Param& p = groups[g].params[i];
      const std::string label = param_label(p, g, i);
      check_param(name_, p, label);
      TERSE_CHECK(p.value.numel == 0 || seen.insert(p.value.data).second, InvalidArgument, name_,
                  ": ", label, " appears more than once; pass every parameter once");
    }
    grp.params = std::move(groups[g].params);
    grp.states.resize(grp.params.size());
    groups_.push_back(std::move(grp));
  }
}

void MatrixOptimizerBase::step() {
  const int64_t t = step_count_ + 1;
  run_step(t);
  step_count_ = t;
}

const MatrixOptimizerBase::Group& MatrixOptimizerBase::group_at(size_t group,
                                                                const char* caller) const {
  TERSE_CHECK(group < groups_.size(), InvalidArgument, name_, ".", caller, ": group ", group,
              " does not exist; this optimizer has ", groups_.size(), " group(s)");
  return groups_[group];
}

double MatrixOptimizerBase::lr(size_t group) const { return group_at(group, "lr").lr; }

double MatrixOptimizerBase::base_lr(size_t group) const {
  return group_at(group, "base_lr").base_lr;
}

double MatrixOptimizerBase::lr_factor(size_t group) const {
  const Group& grp = groups_[group];
  return grp.base_lr > 0 ? grp.lr / grp.base_lr : 1.0;
}

void MatrixOptimizerBase::set_lr(double lr, size_t group) {
  group_at(group, "set_lr");
  TERSE_CHECK(std::isfinite(lr) && lr >= 0, InvalidArgument, name_,
              ".set_lr: lr must be a finite number >= 0, got ", lr);
  groups_[group].lr = lr;
}

void MatrixOptimizerBase::scale_lr(double factor) {
  TERSE_CHECK(std::isfinite(factor) && factor >= 0, InvalidArgument, name_,
              ".scale_lr: factor must be a finite number >= 0, got ", factor);
  for (auto& grp : groups_) grp.lr = grp.base_lr * factor;
}

OptionMap MatrixOptimizerBase::options(size_t group) const {
  const Group& grp = group_at(group, "options");
  OptionMap out;
  for (const auto& d : defs_) {
    const auto it = grp.given.find(d.name);
    out[d.name] = it == grp.given.end() ? d.default_value : trim(it->second);
  }
  for (const auto& w : words_) {
    const auto it = grp.given.find(w.name);
    out[w.name] = it == grp.given.end() ? w.default_value : trim(it->second);
  }
  out["lr"] = format_double(grp.lr);
  describe(group, out);
  return out;
}

size_t MatrixOptimizerBase::state_bytes() const {
  size_t bytes = extra_state_bytes();
  for (const auto& grp : groups_) {
    for (const auto& st : grp.states) {
      for (const auto& buf : st) bytes += buf.data.size() * sizeof(float);
    }
  }
  return bytes;
}

// Layout as FusedOptimizerBase's: strings "optimizer"; ints "step_count", "num_groups",
// "group.G.num_params"; floats "group.G.lr"; strings "param.K.name"; tensors
// "state.K.<name>", K the parameter's index over all groups. Buffers that are not
// parameter-sized (FRUGAL's subspace moments) are saved flat.
StateDict MatrixOptimizerBase::state_dict() const {
  StateDict sd;
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
      const std::string kp = std::to_string(k);
      if (!p.name.empty()) sd.strings["param." + kp + ".name"] = p.name;
      for (const auto& buf : grp.states[i]) {
        const auto n = static_cast<int64_t>(buf.data.size());
        TensorView view(const_cast<float*>(buf.data.data()), n, DType::kF32);
        std::vector<int64_t> shape = n == p.value.numel ? p.shape : std::vector<int64_t>{n};
        sd.tensors["state." + kp + "." + buf.name] = StateTensor::copy_of(view, shape);
      }
    }
  }
  return sd;
}

void MatrixOptimizerBase::load_state_dict(const StateDict& sd) {
  const std::string& saved = sd.string_value("optimizer");
  TERSE_CHECK(saved == name_, InvalidArgument, "load_state_dict: the state dict is from ",
              "optimizer '", saved, "' but this optimizer is '", name_,
              "'; build the same optimizer that saved it");
  const int64_t steps = sd.int_value("step_count");
  TERSE_CHECK(steps >= 0, CorruptData, "load_state_dict: step_count is ", steps,
              "; the state dict is damaged");
  const int64_t ng = sd.int_value("num_groups");
  TERSE_CHECK(ng == static_cast<int64_t>(groups_.size()), InvalidArgument,
              "load_state_dict: the state dict has ", ng, " parameter group(s), this ", name_,
              " has ", groups_.size(), "; build it with the same groups");
  // Everything is checked and copied into `fresh` first, so an error leaves *this unchanged.
  std::vector<std::vector<std::vector<Buffer>>> fresh(groups_.size());
  std::vector<double> lrs(groups_.size());
  size_t used = 0;
  size_t k = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const Group& grp = groups_[g];
    const std::string gp = "group." + std::to_string(g) + ".";
    const int64_t np = sd.int_value(gp + "num_params");
    TERSE_CHECK(np == static_cast<int64_t>(grp.params.size()), InvalidArgument,
                "load_state_dict: group ", g, " has ", np, " parameter(s) in the state dict but ",
                grp.params.size(), " here; build the optimizer over the same model");
    lrs[g] = sd.float_value(gp + "lr");
    TERSE_CHECK(std::isfinite(lrs[g]) && lrs[g] >= 0, CorruptData, "load_state_dict: group ", g,
                " has lr ", lrs[g], "; the state dict is damaged");
    fresh[g].resize(grp.params.size());
    for (size_t i = 0; i < grp.params.size(); ++i, ++k) {
      const Param& p = grp.params[i];
      const std::string kp = std::to_string(k);
      const auto name_it = sd.strings.find("param." + kp + ".name");
      TERSE_CHECK(name_it == sd.strings.end() || p.name.empty() || name_it->second == p.name,
                  InvalidArgument, "load_state_dict: parameter ", k, " was saved as '",
                  name_it == sd.strings.end() ? "" : name_it->second, "' but here it is '", p.name,
                  "'; load into the same model");
      if (steps == 0) continue;  // no state before the first step, as in torch
      for (const auto& [n, size] : state_layout(g, i, steps)) {
        const std::string key = "state." + kp + "." + n;
        const StateTensor& t = sd.tensor(key);
        Buffer buf{n, std::vector<float>(size)};
        t.copy_to(TensorView::of(buf.data.data(), static_cast<int64_t>(size)), key);
        fresh[g][i].push_back(std::move(buf));
        ++used;
      }
    }
  }
  size_t state_tensors = 0;
  for (const auto& [key, t] : sd.tensors) state_tensors += key.rfind("state.", 0) == 0 ? 1 : 0;
  TERSE_CHECK(state_tensors == used, InvalidArgument, "load_state_dict: the state dict holds ",
              state_tensors, " state tensor(s) but this ", name_, " uses ", used,
              " with its options; load with the options it was saved with");
  for (size_t g = 0; g < groups_.size(); ++g) {
    groups_[g].states = std::move(fresh[g]);
    groups_[g].lr = lrs[g];
  }
  step_count_ = steps;
  after_load(steps);
}

}  // namespace terse::optim_detail

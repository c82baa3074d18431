#include "fused_optimizer.h"

#include <cmath>
#include <set>
#include <utility>

#include "option_values.h"
#include "terse/core/check.h"
#include "terse/kernels/cpu_multi_tensor.h"

namespace terse::optim_detail {
namespace {

const std::vector<OptionDef> kSgdOptions = {
    {"lr", OptionType::kDouble, "0.001"},     {"momentum", OptionType::kDouble, "0"},
    {"dampening", OptionType::kDouble, "0"},  {"weight_decay", OptionType::kDouble, "0"},
    {"nesterov", OptionType::kBool, "false"}, {"maximize", OptionType::kBool, "false"}};

std::vector<OptionDef> adam_options(const char* weight_decay) {
  return {
      {"lr", OptionType::kDouble, "0.001"},    {"betas", OptionType::kPair, "0.9/0.999"},
      {"eps", OptionType::kDouble, "1e-08"},   {"weight_decay", OptionType::kDouble, weight_decay},
      {"amsgrad", OptionType::kBool, "false"}, {"maximize", OptionType::kBool, "false"}};
}

std::string option_names(const KindInfo& info) {
  std::vector<std::string> names;
  for (const auto& d : info.options) names.push_back(d.name);
  return join(names, ", ");
}

std::string param_label(const Param& p, size_t group, size_t index) {
  std::string s = "param " + std::to_string(index) + " of group " + std::to_string(group);
  if (!p.name.empty()) s += " ('" + p.name + "')";
  return s;
}

}  // namespace

const KindInfo& kind_info(Kind kind) {
  static const KindInfo kSgd{Kind::kSgd, "sgd", kSgdOptions};
  static const KindInfo kAdam{Kind::kAdam, "adam", adam_options("0")};
  static const KindInfo kAdamW{Kind::kAdamW, "adamw", adam_options("0.01")};
  switch (kind) {
    case Kind::kSgd:
      return kSgd;
    case Kind::kAdam:
      return kAdam;
    case Kind::kAdamW:
      break;
  }
  return kAdamW;
}

Kind kind_from_name(const std::string& name) {
  for (Kind k : {Kind::kSgd, Kind::kAdam, Kind::kAdamW}) {
    if (name == kind_info(k).name) return k;
  }
  TERSE_THROW(InvalidArgument, "unknown optimizer '", name, "'; known optimizers are: sgd, adam, ",
              "adamw (write e.g. --optimizer adamw:lr=1e-3)");
}

Hyper FusedOptimizer::parse_group(const OptionMap& given, size_t group) const {
  const std::string who = std::string(info_.name) + " (group " + std::to_string(group) + ")";
  for (const auto& [key, value] : given) {
    bool known = false;
    for (const auto& d : info_.options) known = known || key == d.name;
    TERSE_CHECK(known, InvalidArgument, who, ": unknown option '", key, "' (= '", value,
                "'); valid options for ", info_.name, " are: ", option_names(info_));
  }
  Hyper h;
  for (const auto& d : info_.options) {
    const auto it = given.find(d.name);
    const std::string text = it == given.end() ? d.default_value : it->second;
    const std::string what = who + " option '" + d.name + "'";
    const std::string key = d.name;
    if (d.type == OptionType::kPair) {
      std::tie(h.beta1, h.beta2) = parse_pair(what, text);
    } else if (d.type == OptionType::kBool) {
      const bool b = parse_bool(what, text);
      if (key == "nesterov") h.nesterov = b;
      if (key == "maximize") h.maximize = b;
      if (key == "amsgrad") h.amsgrad = b;
    } else {
      const double v = parse_double(what, text);
      if (key == "lr") h.lr = v;
      if (key == "momentum") h.momentum = v;
      if (key == "dampening") h.dampening = v;
      if (key == "weight_decay") h.weight_decay = v;
      if (key == "eps") h.eps = v;
    }
  }
  TERSE_CHECK(std::isfinite(h.lr) && h.lr >= 0, InvalidArgument, who, ": lr must be a finite ",
              "number >= 0, got ", h.lr, "; pass e.g. lr=1e-3");
  TERSE_CHECK(std::isfinite(h.weight_decay) && h.weight_decay >= 0, InvalidArgument, who,
              ": weight_decay must be a finite number >= 0, got ", h.weight_decay);
  if (info_.kind == Kind::kSgd) {
    TERSE_CHECK(h.momentum >= 0 && h.momentum < 1, InvalidArgument, who,
                ": momentum must be in [0, 1), got ", h.momentum, "; 0.9 is usual");
    TERSE_CHECK(h.dampening >= 0 && h.dampening <= 1, InvalidArgument, who,
                ": dampening must be in [0, 1], got ", h.dampening);
    TERSE_CHECK(!h.nesterov || (h.momentum > 0 && h.dampening == 0), InvalidArgument, who,
                ": nesterov=true needs momentum > 0 and dampening = 0, got momentum=", h.momentum,
                " dampening=", h.dampening, "; set momentum (e.g. 0.9) or drop ",
                "dampening or nesterov");
  } else {
    TERSE_CHECK(h.beta1 >= 0 && h.beta1 < 1 && h.beta2 >= 0 && h.beta2 < 1, InvalidArgument, who,
                ": betas must each be in [0, 1), got ", h.beta1, "/", h.beta2,
                "; 0.9/0.999 is usual");
    TERSE_CHECK(std::isfinite(h.eps) && h.eps > 0, InvalidArgument, who,
                ": eps must be a finite number > 0, got ", h.eps, "; 1e-8 is usual");
  }
  return h;
}

std::vector<std::string> FusedOptimizer::state_names(const Hyper& h) const {
  if (info_.kind == Kind::kSgd) {
    if (h.momentum == 0) return {};  // torch keeps no buffer without momentum
    return {"momentum_buffer"};
  }
  if (h.amsgrad) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  return {"exp_avg", "exp_avg_sq"};
}

FusedOptimizer::FusedOptimizer(Kind kind, const OptionMap& options, std::vector<ParamGroup> groups)
    : info_(kind_info(kind)) {
  TERSE_CHECK(!groups.empty(), InvalidArgument, info_.name,
              ": got no parameter groups; pass at least one parameter");
  std::set<const void*> seen;
  for (size_t g = 0; g < groups.size(); ++g) {
    Group grp;
    grp.given = options;
    for (const auto& [k, v] : groups[g].overrides) grp.given[k] = v;
    grp.hyper = parse_group(grp.given, g);
    grp.base_lr = grp.hyper.lr;
    for (size_t i = 0; i < groups[g].params.size(); ++i) {
      const Param& p = groups[g].params[i];
      const std::string label = param_label(p, g, i);
      TERSE_CHECK(p.value.dtype == DType::kF32 || p.value.dtype == DType::kBF16 ||
                      p.value.dtype == DType::kF16,
                  InvalidArgument, info_.name, ": ", label, " has dtype ",
                  dtype_name(p.value.dtype), "; parameters must be f32, bf16 or f16");
      TERSE_CHECK(p.value.device.is_cpu() && p.grad.device.is_cpu(), InvalidArgument, info_.name,
                  ": ", label, " is on ", p.value.device.str(), " (grad on ", p.grad.device.str(),
                  "); this optimizer steps CPU tensors; move the parameters to the CPU");
      TERSE_CHECK(p.grad.numel == p.value.numel && p.grad.dtype == p.value.dtype, InvalidArgument,
                  info_.name, ": ", label, " is ", p.value.numel, " x ", dtype_name(p.value.dtype),
                  " but its grad is ", p.grad.numel, " x ", dtype_name(p.grad.dtype),
                  "; the gradient must match the parameter");
      TERSE_CHECK(p.value.numel == 0 || (p.value.data != nullptr && p.grad.data != nullptr),
                  InvalidArgument, info_.name, ": ", label, " has ", p.value.numel,
                  " elements but a null value or grad pointer; allocate both first");
      TERSE_CHECK(p.value.numel == 0 || seen.insert(p.value.data).second, InvalidArgument,
                  info_.name, ": ", label, " appears more than once; pass every parameter once");
      if (!p.shape.empty()) {
        int64_t n = 1;
        for (int64_t d : p.shape) n *= d;
        TERSE_CHECK(n == p.value.numel, InvalidArgument, info_.name, ": ", label, " has shape ",
                    "with ", n, " elements but numel ", p.value.numel, "; fix the shape");
      }
    }
    grp.params = std::move(groups[g].params);
    grp.states.resize(grp.params.size());
    groups_.push_back(std::move(grp));
  }
}

void FusedOptimizer::step() {
  const int64_t t = step_count_ + 1;
  std::vector<CpuTensorTask<SgdRule<false>>> sgd_plain;
  std::vector<CpuTensorTask<SgdRule<true>>> sgd_momentum;
  std::vector<CpuTensorTask<AdamRule<false>>> adam;
  std::vector<CpuTensorTask<AdamRule<true>>> amsgrad;
  for (auto& grp : groups_) {
    const Hyper& h = grp.hyper;
    const size_t num_states = state_names(h).size();
    for (size_t i = 0; i < grp.params.size(); ++i) {
      auto& st = grp.states[i];
      if (st.size() != num_states) {
        // First step: allocate zeroed buffers, as torch creates its state lazily.
        st.assign(num_states, std::vector<float>(static_cast<size_t>(grp.params[i].value.numel)));
      }
      const Param& p = grp.params[i];
      auto fill = [&](auto& list, const auto& rule) {
        list.emplace_back();
        auto& task = list.back();
        task.rule = rule;
        task.param = p.value;
        task.grad = p.grad;
        for (size_t k = 0; k < num_states; ++k) task.states[k] = st[k].data();
      };
      if (info_.kind == Kind::kSgd) {
        if (h.momentum == 0) {
          fill(sgd_plain, SgdRule<false>::for_step(h.lr, 0, h.dampening, h.weight_decay, h.nesterov,
                                                   h.maximize, t));
        } else {
          fill(sgd_momentum, SgdRule<true>::for_step(h.lr, h.momentum, h.dampening, h.weight_decay,
                                                     h.nesterov, h.maximize, t));
        }
      } else {
        const bool decoupled = info_.kind == Kind::kAdamW;
        if (h.amsgrad) {
          fill(amsgrad, AdamRule<true>::for_step(h.lr, h.beta1, h.beta2, h.eps, h.weight_decay,
                                                 decoupled, h.maximize, t));
        } else {
          fill(adam, AdamRule<false>::for_step(h.lr, h.beta1, h.beta2, h.eps, h.weight_decay,
                                               decoupled, h.maximize, t));
        }
      }
    }
  }
  if (!sgd_plain.empty()) cpu_multi_tensor_apply(sgd_plain);
  if (!sgd_momentum.empty()) cpu_multi_tensor_apply(sgd_momentum);
  if (!adam.empty()) cpu_multi_tensor_apply(adam);
  if (!amsgrad.empty()) cpu_multi_tensor_apply(amsgrad);
  step_count_ = t;
}

const FusedOptimizer::Group& FusedOptimizer::group_at(size_t group, const char* caller) const {
  TERSE_CHECK(group < groups_.size(), InvalidArgument, info_.name, ".", caller, ": group ", group,
              " does not exist; this optimizer has ", groups_.size(), " group(s)");
  return groups_[group];
}

void FusedOptimizer::check_lr(double lr, const char* what) const {
  TERSE_CHECK(std::isfinite(lr) && lr >= 0, InvalidArgument, info_.name, ".", what,
              ": lr must be a finite number >= 0, got ", lr);
}

double FusedOptimizer::lr(size_t group) const { return group_at(group, "lr").hyper.lr; }

double FusedOptimizer::base_lr(size_t group) const { return group_at(group, "base_lr").base_lr; }

void FusedOptimizer::set_lr(double lr, size_t group) {
  group_at(group, "set_lr");
  check_lr(lr, "set_lr");
  groups_[group].hyper.lr = lr;
}

void FusedOptimizer::scale_lr(double factor) {
  TERSE_CHECK(std::isfinite(factor) && factor >= 0, InvalidArgument, info_.name,
              ".scale_lr: factor must be a finite number >= 0, got ", factor);
  for (auto& grp : groups_) grp.hyper.lr = grp.base_lr * factor;
}

OptionMap FusedOptimizer::options(size_t group) const {
  const Group& grp = group_at(group, "options");
  OptionMap out;
  for (const auto& d : info_.options) {
    const auto it = grp.given.find(d.name);
    out[d.name] = it == grp.given.end() ? d.default_value : trim(it->second);
  }
  // Normalise numbers so logs show what is used, and lr as it is now (schedules change it).
  const Hyper& h = grp.hyper;
  out["lr"] = format_double(h.lr);
  out["weight_decay"] = format_double(h.weight_decay);
  if (info_.kind == Kind::kSgd) {
    out["momentum"] = format_double(h.momentum);
    out["dampening"] = format_double(h.dampening);
    out["nesterov"] = h.nesterov ? "true" : "false";
  } else {
    out["betas"] = format_double(h.beta1) + "/" + format_double(h.beta2);
    out["eps"] = format_double(h.eps);
    out["amsgrad"] = h.amsgrad ? "true" : "false";
  }
  out["maximize"] = h.maximize ? "true" : "false";
  return out;
}

size_t FusedOptimizer::state_bytes() const {
  size_t bytes = 0;
  for (const auto& grp : groups_) {
    for (const auto& st : grp.states) {
      for (const auto& buf : st) bytes += buf.size() * sizeof(float);
    }
  }
  return bytes;
}

// Layout: strings "optimizer"; ints "step_count", "num_groups", "group.G.num_params";
// floats "group.G.lr"; strings "param.K.name" (named params); tensors "state.K.<torch name>"
// with K the parameter's index over all groups, as in torch's state_dict.
StateDict FusedOptimizer::state_dict() const {
  StateDict sd;
  sd.strings["optimizer"] = info_.name;
  sd.ints["step_count"] = step_count_;
  sd.ints["num_groups"] = static_cast<int64_t>(groups_.size());
  size_t k = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const Group& grp = groups_[g];
    const std::string gp = "group." + std::to_string(g) + ".";
    sd.ints[gp + "num_params"] = static_cast<int64_t>(grp.params.size());
    sd.floats[gp + "lr"] = grp.hyper.lr;
    const auto names = state_names(grp.hyper);
    for (size_t i = 0; i < grp.params.size(); ++i, ++k) {
      const Param& p = grp.params[i];
      const std::string kp = std::to_string(k);
      if (!p.name.empty()) sd.strings["param." + kp + ".name"] = p.name;
      for (size_t s = 0; s < grp.states[i].size(); ++s) {
        auto& buf = grp.states[i][s];
        TensorView view(const_cast<float*>(buf.data()), static_cast<int64_t>(buf.size()),
                        DType::kF32);
        sd.tensors["state." + kp + "." + names[s]] = StateTensor::copy_of(view, p.shape);
      }
    }
  }
  return sd;
}

void FusedOptimizer::load_state_dict(const StateDict& sd) {
  const std::string& saved = sd.string_value("optimizer");
  TERSE_CHECK(saved == info_.name, InvalidArgument, "load_state_dict: the state dict is from ",
              "optimizer '", saved, "' but this optimizer is '", info_.name,
              "'; build the same optimizer that saved it");
  const int64_t steps = sd.int_value("step_count");
  TERSE_CHECK(steps >= 0, CorruptData, "load_state_dict: step_count is ", steps,
              "; the state dict is damaged");
  const int64_t ng = sd.int_value("num_groups");
  TERSE_CHECK(ng == static_cast<int64_t>(groups_.size()), InvalidArgument,
              "load_state_dict: the state dict has ", ng, " parameter group(s), this ", info_.name,
              " has ", groups_.size(), "; build it with the same groups");
  // Everything is checked and copied into `fresh` first, so an error leaves *this unchanged.
  std::vector<std::vector<std::vector<std::vector<float>>>> fresh(groups_.size());
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
    const auto names = state_names(grp.hyper);
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
      for (const auto& n : names) {
        const std::string key = "state." + kp + "." + n;
        const StateTensor& t = sd.tensor(key);
        std::vector<float> buf(static_cast<size_t>(p.value.numel));
        t.copy_to(TensorView::of(buf.data(), p.value.numel), key);
        fresh[g][i].push_back(std::move(buf));
        ++used;
      }
    }
  }
  size_t state_tensors = 0;
  for (const auto& [key, t] : sd.tensors) state_tensors += key.rfind("state.", 0) == 0 ? 1 : 0;
  TERSE_CHECK(state_tensors == used, InvalidArgument, "load_state_dict: the state dict holds ",
              state_tensors, " state tensor(s) but this ", info_.name, " uses ", used,
              " with its options (e.g. momentum or amsgrad differ); load with the options it ",
              "was saved with");
  for (size_t g = 0; g < groups_.size(); ++g) {
    groups_[g].states = std::move(fresh[g]);
    groups_[g].hyper.lr = lrs[g];
  }
  step_count_ = steps;
}

}  // namespace terse::optim_detail

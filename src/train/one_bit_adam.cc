#include "terse/train/one_bit_adam.h"

#include <chrono>
#include <cmath>
#include <set>
#include <utility>

#include "../optim/option_values.h"
#include "terse/core/check.h"
#include "terse/kernels/cpu_multi_tensor.h"

namespace terse {
namespace {

using optim_detail::format_double;
using optim_detail::join;
using optim_detail::parse_bool;
using optim_detail::parse_double;
using optim_detail::parse_int;
using optim_detail::parse_pair;
using optim_detail::trim;

const char* const kName = "onebit_adam";
// Every option with its default ("" = required); the first four may differ per
// group.
const std::vector<std::pair<const char*, const char*>> kOptions = {{"lr", "0.001"},
                                                                   {"betas", "0.9/0.999"},
                                                                   {"eps", "1e-08"},
                                                                   {"weight_decay", "0"},
                                                                   {"freeze_step", ""},
                                                                   {"bias_correction", "false"},
                                                                   {"eps_inside_sqrt", "false"}};
const std::set<std::string> kGroupOptions = {"lr", "betas", "eps", "weight_decay"};

std::string option_names() {
  std::vector<std::string> names;
  for (const auto& o : kOptions) names.push_back(o.first);
  return join(names, ", ");
}

std::string param_label(const Param& p, size_t group, size_t index) {
  std::string s = "param " + std::to_string(index) + " of group " + std::to_string(group);
  if (!p.name.empty()) s += " ('" + p.name + "')";
  return s;
}

void check_known(const OptionMap& given, const std::string& who) {
  for (const auto& [key, value] : given) {
    bool known = false;
    for (const auto& o : kOptions) known = known || key == o.first;
    TERSE_CHECK(known, InvalidArgument, who, ": unknown option '", key, "' (= '", value,
                "'); valid options for ", kName, " are: ", option_names());
  }
}

std::string value_of(const OptionMap& given, const std::string& key) {
  const auto it = given.find(key);
  if (it != given.end()) return it->second;
  for (const auto& o : kOptions) {
    if (key == o.first) return o.second;
  }
  return "";
}

using Clock = std::chrono::steady_clock;

}  // namespace

OneBitAdam::OneBitAdam(Communicator& comm, const OptionMap& options, std::vector<ParamGroup> groups)
    : comm_(comm) {
  check_known(options, kName);
  TERSE_CHECK(options.count("freeze_step") == 1, InvalidArgument, kName,
              ": option 'freeze_step' is required (the number of dense Adam "
              "warm-up steps before "
              "the 1-bit compression phase, an integer > 0); DeepSpeed "
              "suggests 15-25% of the "
              "run's steps, e.g. onebit_adam:freeze_step=1000");
  freeze_step_ = parse_int(std::string(kName) + " option 'freeze_step'", options.at("freeze_step"));
  TERSE_CHECK(freeze_step_ > 0, InvalidArgument, kName, ": option 'freeze_step' must be an ",
              "integer > 0, got ", freeze_step_, "; pass the number of warm-up steps, e.g. 1000");
  bias_correction_ = parse_bool(std::string(kName) + " option 'bias_correction'",
                                value_of(options, "bias_correction"));
  const bool eps_inside = parse_bool(std::string(kName) + " option 'eps_inside_sqrt'",
                                     value_of(options, "eps_inside_sqrt"));
  TERSE_CHECK(!eps_inside, InvalidArgument, kName, ": option 'eps_inside_sqrt' is true; only ",
              "false (eps added outside the square root) is supported "
              "(DeepSpeed's 1-bit Adam ",
              "accepts the option but ignores it); drop it or set it to false");
  TERSE_CHECK(!groups.empty(), InvalidArgument, kName,
              ": got no parameter groups; pass at least one parameter");

  std::set<const void*> seen;
  for (size_t g = 0; g < groups.size(); ++g) {
    const std::string who = std::string(kName) + " (group " + std::to_string(g) + ")";
    check_known(groups[g].overrides, who);
    for (const auto& [key, value] : groups[g].overrides) {
      TERSE_CHECK(kGroupOptions.count(key) == 1, InvalidArgument, who, ": option '", key, "' (= '",
                  value, "') cannot differ per group (every group shares one flat ",
                  "1-bit buffer and one schedule); set it in the optimizer "
                  "spec, and override ",
                  "only lr, betas, eps or weight_decay per group");
    }
    Group grp;
    grp.given = options;
    for (const auto& [k, v] : groups[g].overrides) grp.given[k] = v;
    grp.lr = parse_double(who + " option 'lr'", value_of(grp.given, "lr"));
    std::tie(grp.beta1, grp.beta2) =
        parse_pair(who + " option 'betas'", value_of(grp.given, "betas"));
    grp.eps = parse_double(who + " option 'eps'", value_of(grp.given, "eps"));
    grp.weight_decay =
        parse_double(who + " option 'weight_decay'", value_of(grp.given, "weight_decay"));
    TERSE_CHECK(std::isfinite(grp.lr) && grp.lr >= 0, InvalidArgument, who,
                ": option 'lr' must be a finite number >= 0, got ", grp.lr, "; pass e.g. lr=1e-3");
    TERSE_CHECK(grp.beta1 >= 0 && grp.beta1 < 1 && grp.beta2 >= 0 && grp.beta2 < 1, InvalidArgument,
                who, ": option 'betas' must each be in [0, 1), got ", grp.beta1, "/", grp.beta2,
                "; 0.9/0.999 is usual");
    TERSE_CHECK(std::isfinite(grp.eps) && grp.eps > 0, InvalidArgument, who,
                ": option 'eps' must be a finite number > 0, got ", grp.eps, "; 1e-8 is usual");
    TERSE_CHECK(std::isfinite(grp.weight_decay) && grp.weight_decay >= 0, InvalidArgument, who,
                ": option 'weight_decay' must be a finite number >= 0, got ", grp.weight_decay);
    grp.base_lr = grp.lr;
    for (size_t i = 0; i < groups[g].params.size(); ++i) {
      const Param& p = groups[g].params[i];
      const std::string label = param_label(p, g, i);
      TERSE_CHECK(p.value.dtype == DType::kF32 && p.grad.dtype == DType::kF32, InvalidArgument,
                  kName, ": ", label, " is ", dtype_name(p.value.dtype), " (grad ",
                  dtype_name(p.grad.dtype), "); 1-bit Adam steps f32 parameters and gradients ",
                  "only (its flat momentum buffer is f32); keep f32 master weights");
      TERSE_CHECK(p.value.device.is_cpu() && p.grad.device.is_cpu(), InvalidArgument, kName, ": ",
                  label, " is on ", p.value.device.str(), " (grad on ", p.grad.device.str(),
                  "); this optimizer steps CPU tensors; move the parameters to "
                  "the CPU");
      TERSE_CHECK(p.grad.numel == p.value.numel, InvalidArgument, kName, ": ", label, " has ",
                  p.value.numel, " elements but its grad has ", p.grad.numel,
                  "; the gradient must match the parameter");
      TERSE_CHECK(p.value.numel == 0 || (p.value.data != nullptr && p.grad.data != nullptr),
                  InvalidArgument, kName, ": ", label, " has ", p.value.numel,
                  " elements but a null value or grad pointer; allocate both first");
      TERSE_CHECK(p.value.numel == 0 || seen.insert(p.value.data).second, InvalidArgument, kName,
                  ": ", label, " appears more than once; pass every parameter once");
      grp.offsets.push_back(numel_);
      numel_ += p.value.numel;
    }
    grp.params = std::move(groups[g].params);
    groups_.push_back(std::move(grp));
  }
  TERSE_CHECK(numel_ > 0, InvalidArgument, kName, ": the parameters hold no elements; pass at ",
              "least one non-empty parameter");
  exp_avg_.assign(static_cast<size_t>(numel_), 0.0f);
  exp_avg_sq_.assign(static_cast<size_t>(numel_), 0.0f);
  onebit_ = std::make_unique<OneBitAllReduce>(comm_, numel_);
}

void OneBitAdam::step() {
  const int64_t t = step_count_ + 1;
  if (wants_averaged_gradients()) {
    warmup_step(t);
  } else {
    compression_step(t);
  }
  step_count_ = t;
}

void OneBitAdam::warmup_step(int64_t t) {
  // The averaged gradient is the same on every rank, so every rank stops here
  // alike.
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const Param& p = groups_[g].params[i];
      const float* grad = p.grad.as<float>();
      for (int64_t k = 0; k < p.grad.numel; ++k) {
        TERSE_CHECK(std::isfinite(grad[k]), NumericalError, kName, " step ", t, " (warm-up) on ",
                    "rank ", comm_.rank(), ": the gradient of ", param_label(p, g, i), " holds ",
                    grad[k], " at element ", k, "; lower the lr or clip gradients ",
                    "and resume from the last good checkpoint");
      }
    }
  }
  std::vector<CpuTensorTask<AdamRule<false>>> tasks;
  for (auto& grp : groups_) {
    auto rule = AdamRule<false>::for_step(grp.lr, grp.beta1, grp.beta2, grp.eps, grp.weight_decay,
                                          /*decoupled=*/true, false, t);
    if (!bias_correction_) {
      rule.neg_step_size = static_cast<float>(-grp.lr);
      rule.bias_correction2_sqrt = 1.0f;
    }
    for (size_t i = 0; i < grp.params.size(); ++i) {
      const Param& p = grp.params[i];
      if (p.value.numel == 0) continue;
      tasks.emplace_back();
      auto& task = tasks.back();
      task.rule = rule;
      task.param = p.value;
      task.grad = p.grad;
      const auto off = static_cast<size_t>(grp.offsets[i]);
      task.states[0] = exp_avg_.data() + off;
      task.states[1] = exp_avg_sq_.data() + off;
    }
  }
  cpu_multi_tensor_apply(tasks);
  last_comm_ = CommStats{};
}

void OneBitAdam::compression_step(int64_t t) {
  // The new momentum goes to a send buffer first: if any rank's is not finite
  // the all-reduce throws on every rank and m stays as it was.
  std::vector<float> send(static_cast<size_t>(numel_));
  for (auto& grp : groups_) {
    const auto beta1 = static_cast<float>(grp.beta1);
    const auto one_minus_beta1 = static_cast<float>(1.0 - grp.beta1);
    for (size_t i = 0; i < grp.params.size(); ++i) {
      const Param& p = grp.params[i];
      const float* grad = p.grad.as<float>();
      const auto off = static_cast<size_t>(grp.offsets[i]);
      const float* m = exp_avg_.data() + off;
      float* out = send.data() + off;
      for (int64_t k = 0; k < p.value.numel; ++k) out[k] = beta1 * m[k] + one_minus_beta1 * grad[k];
    }
  }
  const auto t0 = Clock::now();
  const OneBitAllReduceReport report = onebit_->all_reduce(TensorView::of(send.data(), numel_));
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  exp_avg_.swap(send);
  for (auto& grp : groups_) {
    const double c1 = bias_correction_ ? 1.0 - std::pow(grp.beta1, static_cast<double>(t)) : 1.0;
    const double c2 =
        bias_correction_ ? 1.0 - std::pow(grp.beta2, static_cast<double>(freeze_step_)) : 1.0;
    const auto decay = static_cast<float>(1.0 - grp.lr * grp.weight_decay);
    const auto neg_step_size = static_cast<float>(-grp.lr / c1);
    const auto c2_sqrt = static_cast<float>(std::sqrt(c2));
    const auto eps = static_cast<float>(grp.eps);
    for (size_t i = 0; i < grp.params.size(); ++i) {
      const Param& p = grp.params[i];
      float* value = p.value.as<float>();
      const auto off = static_cast<size_t>(grp.offsets[i]);
      const float* m = exp_avg_.data() + off;
      const float* v = exp_avg_sq_.data() + off;
      for (int64_t k = 0; k < p.value.numel; ++k) {
        const float pk = value[k] * decay;
        const float den = std::sqrt(v[k]) / c2_sqrt + eps;
        value[k] = pk + neg_step_size * (m[k] / den);
      }
    }
  }
  last_comm_ = CommStats{};
  last_comm_.bytes_sent = report.bytes_sent;
  last_comm_.bytes_dense =
      ring_all_reduce_bytes(static_cast<uint64_t>(numel_) * sizeof(float), comm_.size());
  last_comm_.payload_bytes = report.payload_bytes;
  last_comm_.payload_dense_bytes = static_cast<uint64_t>(numel_) * sizeof(float);
  last_comm_.time_comm_s = seconds;
}

const OneBitAdam::Group& OneBitAdam::group_at(size_t group, const char* caller) const {
  TERSE_CHECK(group < groups_.size(), InvalidArgument, kName, ".", caller, ": group ", group,
              " does not exist; this optimizer has ", groups_.size(), " group(s)");
  return groups_[group];
}

double OneBitAdam::lr(size_t group) const { return group_at(group, "lr").lr; }

double OneBitAdam::base_lr(size_t group) const { return group_at(group, "base_lr").base_lr; }

void OneBitAdam::set_lr(double lr, size_t group) {
  group_at(group, "set_lr");
  TERSE_CHECK(std::isfinite(lr) && lr >= 0, InvalidArgument, kName,
              ".set_lr: lr must be a finite number >= 0, got ", lr);
  groups_[group].lr = lr;
}

void OneBitAdam::scale_lr(double factor) {
  TERSE_CHECK(std::isfinite(factor) && factor >= 0, InvalidArgument, kName,
              ".scale_lr: factor must be a finite number >= 0, got ", factor);
  for (auto& grp : groups_) grp.lr = grp.base_lr * factor;
}

OptionMap OneBitAdam::options(size_t group) const {
  const Group& grp = group_at(group, "options");
  OptionMap out;
  out["lr"] = format_double(grp.lr);
  out["betas"] = format_double(grp.beta1) + "/" + format_double(grp.beta2);
  out["eps"] = format_double(grp.eps);
  out["weight_decay"] = format_double(grp.weight_decay);
  out["freeze_step"] = std::to_string(freeze_step_);
  out["bias_correction"] = bias_correction_ ? "true" : "false";
  out["eps_inside_sqrt"] = "false";
  return out;
}

size_t OneBitAdam::state_bytes() const {
  return (exp_avg_.size() + exp_avg_sq_.size() + onebit_->worker_error().size() +
          onebit_->server_error().size()) *
         sizeof(float);
}

StateDict OneBitAdam::state_dict() const {
  StateDict sd = onebit_->state_dict("onebit.");
  sd.strings["optimizer"] = kName;
  sd.ints["step_count"] = step_count_;
  sd.ints["num_groups"] = static_cast<int64_t>(groups_.size());
  sd.ints["freeze_step"] = freeze_step_;
  sd.ints["frozen"] = wants_averaged_gradients() ? 0 : 1;
  sd.ints["world_size"] = comm_.size();
  size_t k = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const std::string gp = "group." + std::to_string(g) + ".";
    sd.ints[gp + "num_params"] = static_cast<int64_t>(groups_[g].params.size());
    sd.floats[gp + "lr"] = groups_[g].lr;
    for (const Param& p : groups_[g].params) {
      if (!p.name.empty()) sd.strings["param." + std::to_string(k) + ".name"] = p.name;
      ++k;
    }
  }
  auto* m = const_cast<float*>(exp_avg_.data());
  auto* v = const_cast<float*>(exp_avg_sq_.data());
  sd.tensors["exp_avg"] = StateTensor::copy_of(TensorView::of(m, numel_));
  sd.tensors["exp_avg_sq"] = StateTensor::copy_of(TensorView::of(v, numel_));
  return sd;
}

void OneBitAdam::load_state_dict(const StateDict& sd) {
  const std::string& saved = sd.string_value("optimizer");
  TERSE_CHECK(saved == kName, InvalidArgument, "load_state_dict: the state dict is from ",
              "optimizer '", saved, "' but this optimizer is '", kName,
              "'; build the same optimizer that saved it");
  const int64_t steps = sd.int_value("step_count");
  TERSE_CHECK(steps >= 0, CorruptData, "load_state_dict: step_count is ", steps,
              "; the state dict is damaged");
  const int64_t freeze = sd.int_value("freeze_step");
  TERSE_CHECK(freeze == freeze_step_, InvalidArgument, "load_state_dict: the state dict was ",
              "saved with freeze_step=", freeze, " but this ", kName,
              " has freeze_step=", freeze_step_, "; resume with the freeze_step it was saved with");
  const int64_t frozen = sd.int_value("frozen");
  TERSE_CHECK(frozen == (steps >= freeze ? 1 : 0), CorruptData, "load_state_dict: frozen is ",
              frozen, " at step ", steps, " with freeze_step ", freeze,
              "; the state dict is damaged");
  const int64_t world = sd.int_value("world_size");
  TERSE_CHECK(world == comm_.size(), InvalidArgument, "load_state_dict: the state dict was saved ",
              "on ", world, " rank(s) but this run has ", comm_.size(),
              " (the 1-bit errors are per rank); resume on the same number of ranks");
  const int64_t ng = sd.int_value("num_groups");
  TERSE_CHECK(ng == static_cast<int64_t>(groups_.size()), InvalidArgument,
              "load_state_dict: the state dict has ", ng, " parameter group(s), this ", kName,
              " has ", groups_.size(), "; build it with the same groups");
  std::vector<double> lrs(groups_.size());
  size_t k = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const std::string gp = "group." + std::to_string(g) + ".";
    const int64_t np = sd.int_value(gp + "num_params");
    TERSE_CHECK(np == static_cast<int64_t>(groups_[g].params.size()), InvalidArgument,
                "load_state_dict: group ", g, " has ", np, " parameter(s) in the state dict but ",
                groups_[g].params.size(), " here; build the optimizer over the same model");
    lrs[g] = sd.float_value(gp + "lr");
    TERSE_CHECK(std::isfinite(lrs[g]) && lrs[g] >= 0, CorruptData, "load_state_dict: group ", g,
                " has lr ", lrs[g], "; the state dict is damaged");
    for (const Param& p : groups_[g].params) {
      const auto it = sd.strings.find("param." + std::to_string(k) + ".name");
      TERSE_CHECK(it == sd.strings.end() || p.name.empty() || it->second == p.name, InvalidArgument,
                  "load_state_dict: parameter ", k, " was saved as '",
                  it == sd.strings.end() ? "" : it->second, "' but here it is '", p.name,
                  "'; load into the same model");
      ++k;
    }
  }
  std::vector<float> m(static_cast<size_t>(numel_));
  std::vector<float> v(static_cast<size_t>(numel_));
  sd.tensor("exp_avg").copy_to(TensorView::of(m.data(), numel_), "exp_avg");
  sd.tensor("exp_avg_sq").copy_to(TensorView::of(v.data(), numel_), "exp_avg_sq");
  // Last check, and it leaves the errors unchanged when it throws.
  onebit_->load_state_dict(sd, "onebit.");
  exp_avg_.swap(m);
  exp_avg_sq_.swap(v);
  for (size_t g = 0; g < groups_.size(); ++g) groups_[g].lr = lrs[g];
  step_count_ = steps;
  last_comm_ = CommStats{};
}

}  // namespace terse

#include "fused_optimizer_base.h"

#include <cmath>
#include <set>
#include <utility>

#include "option_values.h"
#include "terse/core/check.h"
#include "terse/core/dtype.h"
#include "terse/kernels/cpu_chunks.h"
#include "terse/kernels/cpu_threads.h"

namespace terse::optim_detail {
namespace {

std::string param_label(const Param& p, size_t group, size_t index) {
  std::string s = "param " + std::to_string(index) + " of group " + std::to_string(group);
  if (!p.name.empty()) s += " ('" + p.name + "')";
  return s;
}

}  // namespace

void FusedOptimizerBase::add_groups(const OptionMap& options, std::vector<ParamGroup> groups,
                                    const std::function<void(const GroupOptions&)>& parse) {
  TERSE_CHECK(!groups.empty(), InvalidArgument, name_,
              ": got no parameter groups; pass at least one parameter");
  std::set<const void*> seen;
  for (size_t g = 0; g < groups.size(); ++g) {
    Group grp;
    grp.given = options;
    for (const auto& [k, v] : groups[g].overrides) grp.given[k] = v;
    const GroupOptions parsed(name_, defs_, grp.given, g);
    parse(parsed);
    grp.lr = parsed.number("lr");
    grp.base_lr = grp.lr;
    for (size_t i = 0; i < groups[g].params.size(); ++i) {
      const Param& p = groups[g].params[i];
      const std::string label = param_label(p, g, i);
      TERSE_CHECK(p.value.dtype == DType::kF32 || p.value.dtype == DType::kBF16 ||
                      p.value.dtype == DType::kF16,
                  InvalidArgument, name_, ": ", label, " has dtype ", dtype_name(p.value.dtype),
                  "; parameters must be f32, bf16 or f16");
      TERSE_CHECK(p.value.device.is_cpu() && p.grad.device.is_cpu(), InvalidArgument, name_, ": ",
                  label, " is on ", p.value.device.str(), " (grad on ", p.grad.device.str(),
                  "); this optimizer steps CPU tensors; move the parameters to the CPU");
      TERSE_CHECK(p.grad.numel == p.value.numel && p.grad.dtype == p.value.dtype, InvalidArgument,
                  name_, ": ", label, " is ", p.value.numel, " x ", dtype_name(p.value.dtype),
                  " but its grad is ", p.grad.numel, " x ", dtype_name(p.grad.dtype),
                  "; the gradient must match the parameter");
      TERSE_CHECK(p.value.numel == 0 || (p.value.data != nullptr && p.grad.data != nullptr),
                  InvalidArgument, name_, ": ", label, " has ", p.value.numel,
                  " elements but a null value or grad pointer; allocate both first");
      TERSE_CHECK(p.value.numel == 0 || seen.insert(p.value.data).second, InvalidArgument, name_,
                  ": ", label, " appears more than once; pass every parameter once");
      if (!p.shape.empty()) {
        int64_t n = 1;
        for (int64_t d : p.shape) n *= d;
        TERSE_CHECK(n == p.value.numel, InvalidArgument, name_, ": ", label, " has shape ", "with ",
                    n, " elements but numel ", p.value.numel, "; fix the shape");
      }
    }
    grp.params = std::move(groups[g].params);
    grp.states.resize(grp.params.size());
    groups_.push_back(std::move(grp));
  }
}

void FusedOptimizerBase::step() {
  const int64_t t = step_count_ + 1;
  for (size_t g = 0; g < groups_.size(); ++g) {
    Group& grp = groups_[g];
    const size_t num_states = state_names(g).size();
    for (size_t i = 0; i < grp.params.size(); ++i) {
      auto& st = grp.states[i];
      if (st.size() != num_states) {
        // First step: allocate zeroed buffers, as torch creates its state lazily.
        st.assign(num_states, std::vector<float>(static_cast<size_t>(grp.params[i].value.numel)));
      }
    }
  }
  if (const char* scalar_name = tensor_scalar_name(); scalar_name != nullptr) {
    for (size_t g = 0; g < groups_.size(); ++g) {
      Group& grp = groups_[g];
      if (grp.tensor_scalars.size() == grp.params.size()) continue;
      // First step: from the first gradient, before any update (SGD-SaI's warmup_step).
      grp.tensor_scalars.resize(grp.params.size());
      for (size_t i = 0; i < grp.params.size(); ++i) {
        grp.tensor_scalars[i] = tensor_scalar(g, grp.params[i]);
      }
    }
  }
  run_step(t);
  step_count_ = t;
}

namespace {

// Sum of g^2 over [begin, end) in double, in 8 fixed lanes so the order (and the bits) do not
// depend on the vector width the compiler picks.
template <typename T>
double sum_squares(const T* g, int64_t begin, int64_t end) {
  constexpr int kLanes = 8;
  double lane[kLanes] = {};
  int64_t i = begin;
  for (; i + kLanes <= end; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const double v = load_as_float(g, i + l);
      lane[l] += v * v;
    }
  }
  for (int l = 0; i < end; ++i, ++l) {
    const double v = load_as_float(g, i);
    lane[l] += v * v;
  }
  double s = 0;
  for (double v : lane) s += v;
  return s;
}

}  // namespace

double FusedOptimizerBase::global_grad_norm() const {
  std::vector<const TensorView*> grads;
  std::vector<int64_t> offsets{0};
  for (const auto& grp : groups_) {
    for (const auto& p : grp.params) {
      grads.push_back(&p.grad);
      offsets.push_back(offsets.back() + p.grad.numel);
    }
  }
  // One partial sum per fixed chunk (a chunk runs on one thread), added up in chunk order.
  std::vector<double> partial(
      static_cast<size_t>((offsets.back() + kCpuChunkElements - 1) / kCpuChunkElements), 0.0);
  cpu_for_each_chunk_piece(offsets, cpu_threads(), [&](size_t i, int64_t begin, int64_t end) {
    const TensorView& g = *grads[i];
    double s = 0;
    switch (g.dtype) {
      case DType::kBF16:
        s = sum_squares(static_cast<const BFloat16*>(g.data), begin, end);
        break;
      case DType::kF16:
        s = sum_squares(static_cast<const Half*>(g.data), begin, end);
        break;
      default:  // f32: add_groups admits nothing else
        s = sum_squares(static_cast<const float*>(g.data), begin, end);
        break;
    }
    partial[static_cast<size_t>((offsets[i] + begin) / kCpuChunkElements)] += s;
  });
  double total = 0;
  for (double s : partial) total += s;
  return std::sqrt(total);
}

const FusedOptimizerBase::Group& FusedOptimizerBase::group_at(size_t group,
                                                              const char* caller) const {
  TERSE_CHECK(group < groups_.size(), InvalidArgument, name_, ".", caller, ": group ", group,
              " does not exist; this optimizer has ", groups_.size(), " group(s)");
  return groups_[group];
}

void FusedOptimizerBase::check_lr(double lr, const char* what) const {
  TERSE_CHECK(std::isfinite(lr) && lr >= 0, InvalidArgument, name_, ".", what,
              ": lr must be a finite number >= 0, got ", lr);
}

double FusedOptimizerBase::lr(size_t group) const { return group_at(group, "lr").lr; }

double FusedOptimizerBase::base_lr(size_t group) const {
  return group_at(group, "base_lr").base_lr;
}

void FusedOptimizerBase::set_lr(double lr, size_t group) {
  group_at(group, "set_lr");
  check_lr(lr, "set_lr");
  groups_[group].lr = lr;
}

void FusedOptimizerBase::scale_lr(double factor) {
  TERSE_CHECK(std::isfinite(factor) && factor >= 0, InvalidArgument, name_,
              ".scale_lr: factor must be a finite number >= 0, got ", factor);
  for (auto& grp : groups_) grp.lr = grp.base_lr * factor;
}

OptionMap FusedOptimizerBase::options(size_t group) const {
  const Group& grp = group_at(group, "options");
  OptionMap out;
  for (const auto& d : defs_) {
    const auto it = grp.given.find(d.name);
    out[d.name] = it == grp.given.end() ? d.default_value : trim(it->second);
  }
  // Normalise numbers so logs show what is used, and lr as it is now (schedules change it).
  out["lr"] = format_double(grp.lr);
  describe(group, out);
  return out;
}

size_t FusedOptimizerBase::state_bytes() const {
  size_t bytes = 0;
  for (const auto& grp : groups_) {
    for (const auto& st : grp.states) {
      for (const auto& buf : st) bytes += buf.size() * sizeof(float);
    }
    bytes += grp.tensor_scalars.size() * sizeof(float);
  }
  return bytes;
}

// Layout: strings "optimizer"; ints "step_count", "num_groups", "group.G.num_params";
// floats "group.G.lr"; strings "param.K.name" (named params); tensors "state.K.<torch name>"
// with K the parameter's index over all groups, as in torch's state_dict; a per-tensor scalar is
// the 1-element tensor "state.K.<tensor_scalar_name()>".
StateDict FusedOptimizerBase::state_dict() const {
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
    const auto names = state_names(g);
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
      if (i < grp.tensor_scalars.size()) {
        TensorView view(const_cast<float*>(&grp.tensor_scalars[i]), 1, DType::kF32);
        sd.tensors["state." + kp + "." + tensor_scalar_name()] = StateTensor::copy_of(view);
      }
    }
  }
  return sd;
}

void FusedOptimizerBase::load_state_dict(const StateDict& sd) {
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
  std::vector<std::vector<std::vector<std::vector<float>>>> fresh(groups_.size());
  std::vector<std::vector<float>> fresh_scalars(groups_.size());
  const char* scalar_name = tensor_scalar_name();
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
    const auto names = state_names(g);
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
      if (scalar_name != nullptr) {
        const std::string key = "state." + kp + "." + scalar_name;
        float v = 0;
        sd.tensor(key).copy_to(TensorView::of(&v, 1), key);
        TERSE_CHECK(std::isfinite(v) && v >= 0, CorruptData, "load_state_dict: ", key, " is ", v,
                    "; it must be a finite number >= 0, the state dict is damaged");
        fresh_scalars[g].push_back(v);
        ++used;
      }
    }
  }
  size_t state_tensors = 0;
  for (const auto& [key, t] : sd.tensors) state_tensors += key.rfind("state.", 0) == 0 ? 1 : 0;
  TERSE_CHECK(state_tensors == used, InvalidArgument, "load_state_dict: the state dict holds ",
              state_tensors, " state tensor(s) but this ", name_, " uses ", used,
              " with its options (e.g. momentum or amsgrad differ); load with the options it ",
              "was saved with");
  for (size_t g = 0; g < groups_.size(); ++g) {
    groups_[g].states = std::move(fresh[g]);
    groups_[g].tensor_scalars = std::move(fresh_scalars[g]);
    groups_[g].lr = lrs[g];
  }
  step_count_ = steps;
}

}  // namespace terse::optim_detail

#include "matrix_optimizer_base.h"

#include <cmath>
#include <set>
#include <utility>

#include "option_values.h"
#include "terse/core/check.h"

namespace terse::optim_detail {

void MatrixOptimizerBase::add_groups(
    const OptionMap& options, std::vector<ParamGroup> groups,
    const std::function<void(const GroupOptions&, const WordOptions&)>& parse) {
  TERSE_CHECK(!groups.empty(), InvalidArgument, name(),
              ": got no parameter groups; pass at least one parameter");
  device_ = one_device(name(), groups);
  std::vector<std::string> all_names;
  for (const auto& d : option_defs()) all_names.push_back(d.name);
  for (const auto& w : word_defs()) all_names.push_back(w.name);
  std::set<const void*> seen;
  for (size_t g = 0; g < groups.size(); ++g) {
    Group grp;
    grp.given = options;
    for (const auto& [k, v] : groups[g].overrides) grp.given[k] = v;
    // Word options are taken out here; GroupOptions parses the typed rest.
    OptionMap typed = grp.given;
    WordOptions words;
    const std::string who = std::string(name()) + " (group " + std::to_string(g) + ")";
    for (const auto& w : word_defs()) {
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
      for (const auto& d : option_defs()) known = known || key == d.name;
      TERSE_CHECK(known, InvalidArgument, who, ": unknown option '", key, "' (= '", value,
                  "'); valid options for ", name(), " are: ", join(all_names, ", "));
    }
    const GroupOptions parsed(name(), option_defs(), typed, g);
    parse(parsed, words);
    grp.lr = parsed.lr();
    grp.base_lr = grp.lr;
    add_group(std::move(grp), std::move(groups[g].params), seen, device_.is_cuda());
  }
}

void MatrixOptimizerBase::step() {
  const int64_t t = step_count_ + 1;
  run_step(t);
  step_count_ = t;
}

double MatrixOptimizerBase::lr_factor(size_t group) const {
  const Group& grp = groups_[group];
  return grp.base_lr > 0 ? grp.lr / grp.base_lr : 1.0;
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
  save_header(sd);
  size_t k = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const Group& grp = groups_[g];
    for (size_t i = 0; i < grp.params.size(); ++i, ++k) {
      const Param& p = grp.params[i];
      const std::string kp = std::to_string(k);
      std::vector<float> scratch;  // a CUDA buffer's host copy
      for (const auto& buf : grp.states[i]) {
        const auto n = static_cast<int64_t>(buf.data.size());
        std::vector<int64_t> shape = n == p.value.numel ? p.shape : std::vector<int64_t>{n};
        sd.tensors["state." + kp + "." + buf.name] =
            StateTensor::copy_of(buf.data.host_view(scratch), shape);
      }
    }
  }
  return sd;
}

void MatrixOptimizerBase::load_state_dict(const StateDict& sd) {
  const Header header = load_header(sd);
  // Everything is checked and copied into `fresh` first, so an error leaves *this unchanged.
  std::vector<std::vector<std::vector<Buffer>>> fresh(groups_.size());
  size_t used = 0;
  size_t k = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    fresh[g].resize(groups_[g].params.size());
    for (size_t i = 0; i < groups_[g].params.size(); ++i, ++k) {
      if (header.steps == 0) continue;  // no state before the first step, as in torch
      const std::string kp = std::to_string(k);
      for (const auto& [n, size] : state_layout(g, i, header.steps)) {
        const std::string key = "state." + kp + "." + n;
        const StateTensor& t = sd.tensor(key);
        std::vector<float> values(size);
        t.copy_to(TensorView::of(values.data(), static_cast<int64_t>(size)), key);
        fresh[g][i].push_back(Buffer{n, StateBuffer(device_, std::move(values))});
        ++used;
      }
    }
  }
  check_state_count(sd, used, "");
  for (size_t g = 0; g < groups_.size(); ++g) groups_[g].states = std::move(fresh[g]);
  apply_header(header);
  after_load(header.steps);
}

}  // namespace terse::optim_detail

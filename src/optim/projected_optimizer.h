#pragma once

// AdamP / SGDP (Heo et al., ICLR 2021): an optimizer whose step is element-wise except for a
// per-tensor decision (cpu_projected.h), built from a definition `Def` with the same contract
// as FusedOptimizer's (fused_optimizer.h), except that every Rule alternative is an
// AdamPRule / SgdPRule-like type (update(), perturb(), `proj`). Groups, lr, schedules,
// options(), state_dict and state_bytes come from FusedOptimizerBase. The step runs on the
// params' device: cpu_projected_apply or cuda_projected_apply, which give the same bits.

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "fused_optimizer_base.h"
#include "terse/kernels/cpu_projected.h"
#include "terse/kernels/cuda_projected.h"

namespace terse::optim_detail {

template <typename Def>
class ProjectedOptimizer final : public FusedOptimizerBase {
 public:
  ProjectedOptimizer(const OptionMap& options, std::vector<ParamGroup> groups)
      : FusedOptimizerBase(Def::kName, def_options<Def>()) {
    add_groups(
        options, std::move(groups),
        [this](const GroupOptions& o) { hypers_.push_back(Def::parse(o)); },
        /*cuda_capable=*/true);
  }

 private:
  using Hyper = typename Def::Hyper;

  std::vector<std::string> state_names(size_t group) const override {
    return Def::state_names(hypers_[group]);
  }

  void describe(size_t group, OptionMap& out) const override { Def::describe(hypers_[group], out); }

  // The official code projects a tensor when len(p.shape) > 1; its channel view has shape[0]
  // rows. A Param without a shape counts as flat (never projected), as 0-d and 1-d tensors are.
  static int64_t rows_of(const Param& p) { return p.shape.size() > 1 ? p.shape[0] : 0; }

  void run_step(int64_t t) override {
    // One task list per Rule alternative (nesterov or not); groups with the same one share it.
    std::vector<typename Def::Rule> rules;
    for (size_t g = 0; g < groups_.size(); ++g)
      rules.push_back(Def::rule(hypers_[g], groups_[g].lr, t));
    run_all(rules, std::make_index_sequence<std::variant_size_v<typename Def::Rule>>{});
  }

  template <size_t... I>
  void run_all(const std::vector<typename Def::Rule>& rules, std::index_sequence<I...>) {
    (run_alternative<std::variant_alternative_t<I, typename Def::Rule>>(rules), ...);
  }

  template <typename R>
  void run_alternative(const std::vector<typename Def::Rule>& rules) {
    std::vector<ProjectedTask<R>> tasks;
    for (size_t g = 0; g < groups_.size(); ++g) {
      const R* r = std::get_if<R>(&rules[g]);
      if (r == nullptr) continue;
      Group& grp = groups_[g];
      for (size_t i = 0; i < grp.params.size(); ++i) {
        ProjectedTask<R> task;
        task.rule = *r;
        task.param = grp.params[i].value;
        task.grad = grp.params[i].grad;
        task.rows = rows_of(grp.params[i]);
        for (int k = 0; k < R::kNumStates; ++k) task.states[k] = grp.states[i][k].data();
        tasks.push_back(task);
      }
    }
    if (tasks.empty()) return;
    if (device().is_cuda()) {
      cuda_projected_apply(tasks);
    } else {
      cpu_projected_apply(tasks);
    }
  }

  std::vector<Hyper> hypers_;
};

}  // namespace terse::optim_detail

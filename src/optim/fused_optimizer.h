#pragma once

// An element-wise optimizer built from a definition `Def` (one per optimizer, in
// src/optim/<name>.cc), which provides:
//   static constexpr const char* kName = "...";  // registry name
//   using Hyper = ...;                         // typed options of one group, lr excluded
//   using Rule = std::variant<RuleA, ...>;      // every Rule type it may run
//   static std::vector<OptionDef> options();    // names, types, official defaults
//   static Hyper parse(const GroupOptions&);    // range checks, messages name option and value
//   static std::vector<std::string> state_names(const Hyper&);  // torch/official names
//   static void describe(const Hyper&, OptionMap& out);         // normalised options, lr aside
//   static Rule rule(const Hyper&, double lr, int64_t step);   // per-step scalars, 1-based step
// step() groups the tensors by Rule type and runs one cpu_multi_tensor_apply per type used.

#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "fused_optimizer_base.h"
#include "terse/kernels/cpu_multi_tensor.h"

namespace terse::optim_detail {

template <typename Variant>
struct TaskLists;

// One task list per alternative of the Rule variant.
template <typename... Rules>
struct TaskLists<std::variant<Rules...>> {
  std::tuple<std::vector<CpuTensorTask<Rules>>...> lists;

  template <typename Rule>
  std::vector<CpuTensorTask<Rule>>& of() {
    return std::get<std::vector<CpuTensorTask<Rule>>>(lists);
  }
  void run() {
    std::apply([](auto&... l) { ((l.empty() ? void() : cpu_multi_tensor_apply(l)), ...); }, lists);
  }
};

template <typename Def>
class FusedOptimizer final : public FusedOptimizerBase {
 public:
  FusedOptimizer(const OptionMap& options, std::vector<ParamGroup> groups)
      : FusedOptimizerBase(Def::kName, defs()) {
    add_groups(options, std::move(groups),
               [this](const GroupOptions& o) { hypers_.push_back(Def::parse(o)); });
  }

 private:
  using Hyper = typename Def::Hyper;

  static const std::vector<OptionDef>& defs() {
    static const std::vector<OptionDef> kDefs = Def::options();
    return kDefs;
  }

  std::vector<std::string> state_names(size_t group) const override {
    return Def::state_names(hypers_[group]);
  }

  void describe(size_t group, OptionMap& out) const override { Def::describe(hypers_[group], out); }

  void run_step(int64_t t) override {
    TaskLists<typename Def::Rule> tasks;
    for (size_t g = 0; g < groups_.size(); ++g) {
      Group& grp = groups_[g];
      const auto rule = Def::rule(hypers_[g], grp.lr, t);
      std::visit(
          [&](const auto& r) {
            using R = std::decay_t<decltype(r)>;
            auto& list = tasks.template of<R>();
            for (size_t i = 0; i < grp.params.size(); ++i) {
              list.emplace_back();
              auto& task = list.back();
              task.rule = r;
              task.param = grp.params[i].value;
              task.grad = grp.params[i].grad;
              auto& st = grp.states[i];
              for (size_t k = 0; k < st.size() && k < static_cast<size_t>(R::kNumStates); ++k) {
                task.states[k] = st[k].data();
              }
            }
          },
          rule);
    }
    tasks.run();
  }

  std::vector<Hyper> hypers_;
};

}  // namespace terse::optim_detail

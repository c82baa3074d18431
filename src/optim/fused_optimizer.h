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
// step() groups the tensors by Rule type and runs one cpu_multi_tensor_apply per type used, or
// cuda_multi_tensor_apply when the parameters are CUDA tensors (and every Rule has a CUDA
// executor).
// A Rule has kNumStates <= 4 f32 states per element (cpu_multi_tensor.h).
//
// Optional hooks (each used only when Def declares it; the Defs without them are unchanged):
// - Per-tensor scalar (SGD-SaI's g-SNR), computed once per tensor from its first gradient:
//     static constexpr const char* kTensorScalarName = "...";    // state_dict name
//     static float tensor_scalar(const Hyper&, const Param&);   // called at step 1, before the
//                                                               // update; finite and >= 0
//     static R for_tensor(const R& group_rule, float scalar);   // the tensor's Rule, per R
//   The scalar is optimizer state: kept, saved, validated on load and counted in state_bytes.
//   tensor_scalar reads host memory; a Def whose scalar can be computed from CUDA gradients
//   also declares (and then runs on CUDA tensors):
//     static std::vector<float> cuda_tensor_scalars(const Hyper&, const std::vector<Param>&);
//   one scalar per param of a group, the same bits as tensor_scalar would give on the host.
// - Global pre-pass (Adan's max_grad_norm clip), once per step before any update:
//     static double global_scalar(const std::vector<Hyper>& all_groups,
//                                 const std::function<double()>& global_grad_norm);
//     static Rule rule(const Hyper&, double lr, int64_t step, double global);  // replaces rule()
//   global_grad_norm() is the L2 norm of every gradient of every group, computed when called
//   (so a Def that does not need it this step costs no pass over the gradients).

#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "fused_optimizer_base.h"
#include "terse/kernels/cpu_multi_tensor.h"
#include "terse/kernels/cuda_multi_tensor.h"

namespace terse::optim_detail {

template <typename Variant>
struct TaskLists;

// One task list per alternative of the Rule variant.
template <typename... Rules>
struct TaskLists<std::variant<Rules...>> {
  std::tuple<std::vector<TensorTask<Rules>>...> lists;

  template <typename Rule>
  std::vector<TensorTask<Rule>>& of() {
    return std::get<std::vector<TensorTask<Rule>>>(lists);
  }
  // Every Rule has a CUDA instantiation (cuda_multi_tensor.h).
  static constexpr bool kCuda = (HasCudaExecutor<Rules>::value && ...);

  void run(bool on_cuda) {
    if constexpr (kCuda) {
      if (on_cuda) {
        std::apply([](auto&... l) { ((l.empty() ? void() : cuda_multi_tensor_apply(l)), ...); },
                   lists);
        return;
      }
    }
    std::apply([](auto&... l) { ((l.empty() ? void() : cpu_multi_tensor_apply(l)), ...); }, lists);
  }
};

template <typename Def, typename = void>
struct HasTensorScalar : std::false_type {};
template <typename Def>
struct HasTensorScalar<Def, std::void_t<decltype(Def::kTensorScalarName)>> : std::true_type {};

template <typename Def, typename = void>
struct HasCudaTensorScalars : std::false_type {};
template <typename Def>
struct HasCudaTensorScalars<Def, std::void_t<decltype(&Def::cuda_tensor_scalars)>>
    : std::true_type {};

template <typename Def, typename = void>
struct HasGlobalScalar : std::false_type {};
template <typename Def>
struct HasGlobalScalar<Def, std::void_t<decltype(&Def::global_scalar)>> : std::true_type {};

template <typename Def>
class FusedOptimizer final : public FusedOptimizerBase {
 public:
  FusedOptimizer(const OptionMap& options, std::vector<ParamGroup> groups)
      : FusedOptimizerBase(Def::kName, def_options<Def>()) {
    add_groups(
        options, std::move(groups),
        [this](const GroupOptions& o) { hypers_.push_back(Def::parse(o)); }, kCudaCapable);
  }

 private:
  using Hyper = typename Def::Hyper;
  // Runs on CUDA tensors: every Rule has a CUDA executor and a per-tensor scalar, if any, can
  // be computed from CUDA gradients.
  static constexpr bool kCudaCapable =
      TaskLists<typename Def::Rule>::kCuda &&
      (!HasTensorScalar<Def>::value || HasCudaTensorScalars<Def>::value);

  std::vector<std::string> state_names(size_t group) const override {
    return Def::state_names(hypers_[group]);
  }

  void describe(size_t group, OptionMap& out) const override { Def::describe(hypers_[group], out); }

  const char* tensor_scalar_name() const override {
    if constexpr (HasTensorScalar<Def>::value) {
      return Def::kTensorScalarName;
    } else {
      return nullptr;
    }
  }

  std::vector<float> tensor_scalars(size_t group) const override {
    std::vector<float> out;
    if constexpr (HasTensorScalar<Def>::value) {
      const std::vector<Param>& params = groups_[group].params;
      if constexpr (HasCudaTensorScalars<Def>::value) {
        if (device().is_cuda()) return Def::cuda_tensor_scalars(hypers_[group], params);
      }
      for (const Param& p : params) out.push_back(Def::tensor_scalar(hypers_[group], p));
    }
    return out;
  }

  void run_step(int64_t t) override {
    TaskLists<typename Def::Rule> tasks;
    double global = 0;
    if constexpr (HasGlobalScalar<Def>::value) {
      global = Def::global_scalar(hypers_, [this] { return global_grad_norm(); });
    }
    (void)global;
    for (size_t g = 0; g < groups_.size(); ++g) {
      Group& grp = groups_[g];
      const auto rule = [&] {
        if constexpr (HasGlobalScalar<Def>::value) {
          return Def::rule(hypers_[g], grp.lr, t, global);
        } else {
          return Def::rule(hypers_[g], grp.lr, t);
        }
      }();
      std::visit(
          [&](const auto& r) {
            using R = std::decay_t<decltype(r)>;
            auto& list = tasks.template of<R>();
            for (size_t i = 0; i < grp.params.size(); ++i) {
              list.emplace_back();
              auto& task = list.back();
              if constexpr (HasTensorScalar<Def>::value) {
                task.rule = Def::for_tensor(r, grp.tensor_scalars[i]);
              } else {
                task.rule = r;
              }
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
    tasks.run(device().is_cuda());
  }

  std::vector<Hyper> hypers_;
};

}  // namespace terse::optim_detail

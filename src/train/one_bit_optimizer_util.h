#pragma once

// Shared by the optimizers that reduce all momenta in one flat 1-bit buffer (OneBitAdam,
// ZeroOneAdam, OneBitLamb): option parsing and validation, parameter checks, the flat layout and
// its state buffers on the host or on one GPU, the element-wise passes on either. Internal to
// terse_train.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "terse/comm/algorithms/one_bit_all_reduce.h"
#include "terse/core/state_dict.h"
#include "terse/kernels/cpu_chunks.h"
#include "terse/kernels/cpu_threads.h"
#include "terse/kernels/cuda_buffer.h"
#include "terse/kernels/cuda_multi_tensor.h"
#include "terse/optim/optimizer.h"
#include "terse/train/comm_stats.h"

namespace terse::train_detail {

// An option and its default ("" = required).
using OptionDefault = std::pair<const char*, const char*>;

// One parameter group over the flat buffer: Adam hyper-parameters, which groups may override.
struct FlatGroup {
  double lr = 1e-3, base_lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  std::vector<Param> params;
  std::vector<int64_t> offsets;  // of each param in the flat buffers
  double lrs = 0;                // ZeroOneAdam: sum of lr since the last sync
};

// Rejects names not in `known` (InvalidArgument listing the valid ones).
void check_known_options(const char* optimizer, const std::vector<OptionDefault>& known,
                         const OptionMap& given, const std::string& who);
// The value given, else the default of `key`.
std::string option_value(const std::vector<OptionDefault>& known, const OptionMap& given,
                         const std::string& key);
// An integer option >= `min`; `required` options must be given.
int64_t int_option(const char* optimizer, const std::vector<OptionDefault>& known,
                   const OptionMap& given, const std::string& key, int64_t min, bool required,
                   const char* hint);
// Validates every group (overrides only of lr, betas, eps, weight_decay) and every parameter
// (f32, matching grad, unique, non-null, every value and grad on one device: the CPU or one GPU)
// and lays them out flat; `numel` gets the total (> 0, else InvalidArgument), `device` where
// the parameters are (the state goes there too).
std::vector<FlatGroup> make_flat_groups(const char* optimizer,
                                        const std::vector<OptionDefault>& known,
                                        const OptionMap& options, std::vector<ParamGroup> groups,
                                        int64_t* numel, Device* device);

// A flat f32 state buffer of numel elements, zero-filled, in host memory or on one GPU.
class FlatBuffer {
 public:
  FlatBuffer() = default;
  FlatBuffer(Device device, int64_t numel);
  float* data() { return device_.is_cpu() ? host_.data() : static_cast<float*>(gpu_.data()); }
  const float* data() const {
    return device_.is_cpu() ? host_.data() : static_cast<const float*>(gpu_.data());
  }
  int64_t numel() const { return numel_; }
  bool empty() const { return numel_ == 0; }
  Device device() const { return device_; }
  // Elements [offset, offset + count) as a view on device().
  TensorView view(int64_t offset, int64_t count);
  TensorView view() { return view(0, numel_); }
  // A host copy (waits for the GPU's work).
  std::vector<float> to_host() const;
  // Replaces the contents by `host` (numel() elements).
  void assign(const std::vector<float>& host);
  void zero();
  // Replaces the contents by those of `o` (same device and numel).
  void copy_from(const FlatBuffer& o);
  void swap(FlatBuffer& o) noexcept;

 private:
  Device device_;
  int64_t numel_ = 0;
  std::vector<float> host_;
  CudaBuffer gpu_;
};

// Throws NumericalError naming the first gradient element that is not finite ("<optimizer> step
// <t> (<phase>) on rank <rank>: the gradient of <param> holds <value> at element <k>; ...").
// On the GPU one pass per parameter, and the element found on the host only when one is bad.
void check_finite_grads(const char* optimizer, const std::vector<FlatGroup>& groups, int64_t t,
                        const char* phase, int rank);
// "param I of group G ('name')".
std::string param_label(const Param& p, size_t group, size_t index);
// The lr, betas, eps, weight_decay of a group as options() prints them.
void add_group_options(const FlatGroup& g, OptionMap* out);
// Common state-dict checks and the per-group lr: the saved optimizer name, num_groups,
// group.G.num_params / lr and param names; returns the lrs, throws InvalidArgument or
// CorruptData. Writes the same keys in save_groups.
std::vector<double> load_groups(const char* optimizer, const std::vector<FlatGroup>& groups,
                                const StateDict& sd);
void save_groups(const char* optimizer, const std::vector<FlatGroup>& groups, StateDict* sd);
// Copies a flat f32 tensor of `numel` elements out of `sd`.
std::vector<float> load_flat(const StateDict& sd, const std::string& key, int64_t numel);
// Saves a host copy of `v`, wherever it lives.
void save_flat(const FlatBuffer& v, const std::string& key, StateDict* sd);
void save_flat(const std::vector<float>& v, const std::string& key, StateDict* sd);
// Copies every parameter's values (copy_params) or gradients (copy_grads) into `flat` (same
// device): on the CPU in the chunks of for_each_flat_piece, on the GPU one copy per tensor.
void copy_params(const std::vector<FlatGroup>& groups, FlatBuffer& flat);
void copy_grads(const std::vector<FlatGroup>& groups, FlatBuffer& flat);

// Per tensor, in group order: the fixed-order double sum of the squares of its values (flat
// null) or of its range of `flat` (fixed_sum::host_sum; on the GPU cuda_fixed_sums, the same
// bits). `device`: where the parameters and flat are. Waits for the GPU.
std::vector<double> tensor_sums_of_squares(const std::vector<FlatGroup>& groups, Device device,
                                           const FlatBuffer* flat);
// Per tensor, in group order: the largest element of its range of `flat` that is > 0, else +0
// (host_positive_max, or cuda_positive_max on the GPU). Waits for the GPU.
std::vector<float> tensor_positive_max(const std::vector<FlatGroup>& groups,
                                       const FlatBuffer& flat);

// The optimizer's all-reduce of a flat buffer of `numel` elements: cpu_threads() threads (no bit
// depends on the count) and the option "defer_worker_error" (a bool; its default is in
// `known`), which sets OneBitAllReduce::Options::defer_worker_error.
std::unique_ptr<OneBitAllReduce> make_one_bit_all_reduce(const char* optimizer,
                                                         const std::vector<OptionDefault>& known,
                                                         const OptionMap& given, Communicator& comm,
                                                         int64_t numel);

// What one 1-bit all-reduce of a flat buffer of `numel` f32 cost, for last_step_comm(): the
// report's bytes, against a dense fp32 ring all-reduce of the same buffer over `world` ranks.
CommStats one_bit_comm_stats(const OneBitAllReduceReport& report, int64_t numel, int world,
                             double seconds);

// Calls fn(group, param, offset, begin, end) for pieces [begin, end) of every parameter (offset:
// the parameter's start in the flat buffers), in the fixed chunks of cpu_for_each_chunk_piece
// on cpu_threads() threads: for element-wise passes only, whose results then do not depend on
// the thread count.
template <typename Fn>
void for_each_flat_piece(const std::vector<FlatGroup>& groups, const Fn& fn) {
  std::vector<std::pair<const FlatGroup*, size_t>> refs;
  std::vector<int64_t> bounds = {0};
  for (const auto& g : groups) {
    for (size_t i = 0; i < g.params.size(); ++i) {
      refs.emplace_back(&g, i);
      bounds.push_back(g.offsets[i] + g.params[i].value.numel);
    }
  }
  cpu_for_each_chunk_piece(bounds, cpu_threads(), [&](size_t t, int64_t begin, int64_t end) {
    const FlatGroup& g = *refs[t].first;
    const size_t i = refs[t].second;
    fn(g, g.params[i], static_cast<size_t>(g.offsets[i]), begin, end);
  });
}

// rule_of(group, i) for the i-th parameter of `group` where rule_of takes both (a rule per
// tensor), else rule_of(group) (one per group).
template <typename RuleOf>
auto flat_rule(const RuleOf& rule_of, const FlatGroup& group, size_t i) {
  if constexpr (std::is_invocable_v<const RuleOf&, const FlatGroup&, size_t>) {
    return rule_of(group, i);
  } else {
    (void)i;
    return rule_of(group);
  }
}

// The Rule that rule_of returns (flat_rule) over every parameter, element k of a parameter at
// flat offset o being rule(p[k], g[k], states[0][o + k], ...) with g = grad_of(param, o) (a view
// of the parameter's size on its device: its gradient, or a slice of a flat buffer). On the CPU
// in the chunks of for_each_flat_piece, on the GPU in one cuda_multi_tensor_apply (the same Rule,
// the same bits). `states`: flat buffers of numel elements on the parameters' device.
template <typename RuleOf, typename GradOf, size_t kStates>
void apply_flat(const std::vector<FlatGroup>& groups, Device device, const RuleOf& rule_of,
                const GradOf& grad_of, const std::array<float*, kStates>& states) {
  using Rule = std::decay_t<decltype(flat_rule(rule_of, groups.front(), 0))>;
  static_assert(Rule::kNumStates == static_cast<int>(kStates), "one flat buffer per state");
  static_assert(kStates <= 4, "the executors take at most 4 states");
  if (device.is_cpu()) {
    for_each_flat_piece(
        groups, [&](const FlatGroup& grp, const Param& p, size_t o, int64_t begin, int64_t end) {
          const Rule rule = flat_rule(rule_of, grp, static_cast<size_t>(&p - grp.params.data()));
          float* value = p.value.as<float>();
          const float* g = grad_of(p, o).template as<float>();
          float* s[4] = {nullptr, nullptr, nullptr, nullptr};
          for (size_t j = 0; j < kStates; ++j) s[j] = states[j] + o;
          for (int64_t k = begin; k < end; ++k) {
            float x[4] = {0, 0, 0, 0};
            for (size_t j = 0; j < kStates; ++j) x[j] = s[j][k];
            if constexpr (kStates > 3) {
              rule(value[k], g[k], x[0], x[1], x[2], x[3]);
            } else {
              rule(value[k], g[k], x[0], x[1], x[2]);
            }
            for (size_t j = 0; j < kStates; ++j) s[j][k] = x[j];
          }
        });
    return;
  }
  std::vector<CudaTensorTask<Rule>> tasks;
  for (const FlatGroup& grp : groups) {
    for (size_t i = 0; i < grp.params.size(); ++i) {
      const Param& p = grp.params[i];
      if (p.value.numel == 0) continue;
      const auto o = static_cast<size_t>(grp.offsets[i]);
      CudaTensorTask<Rule> t;
      t.rule = flat_rule(rule_of, grp, i);
      t.param = p.value;
      t.grad = grad_of(p, o);
      for (size_t j = 0; j < kStates; ++j) t.states[j] = states[j] + o;
      tasks.push_back(t);
    }
  }
  cuda_multi_tensor_apply(tasks);
}

}  // namespace terse::train_detail

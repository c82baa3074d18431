#pragma once

// An 8-bit optimizer built from a definition `Def` (adam8bit.cc, momentum8bit.cc, lion8bit.cc):
//   static constexpr const char* kName;          // registry name
//   static constexpr bool kSkipNonFiniteGrad;    // bnb's 2-state kernel skips NaN/inf grads
//   using Hyper = ...;  Hyper::min_8bit_size     // typed options of one group, lr excluded
//   using Rule = ...;                            // element Rule, kNumStates 1 or 2
//   static std::vector<OptionDef> options();
//   static Hyper parse(const GroupOptions&);
//   static void describe(const Hyper&, OptionMap& out);
//   static Rule rule(const Hyper&, double lr, int64_t step);
// On the CPU, step() runs every tensor in block-aligned work items shared by the OpenMP threads:
// a tensor with 8-bit states goes block by block through eightbit_block_step, a small one
// through f32_state_step. On a GPU, one cuda_eightbit_step launch runs both kinds, with the same
// per-element math, so it gives the CPU's bits (cuda_eightbit_step.h).

#include <cstdint>
#include <utility>
#include <vector>

#include "eightbit_optimizer_base.h"
#include "terse/kernels/blockwise_quant.h"
#include "terse/kernels/cpu_threads.h"
#include "terse/kernels/cuda_eightbit_step.h"
#include "terse/kernels/eightbit_block_step.h"

namespace terse::optim_detail {

template <typename Def>
class EightBitOptimizer final : public EightBitOptimizerBase {
 public:
  EightBitOptimizer(const OptionMap& options, std::vector<ParamGroup> groups)
      : EightBitOptimizerBase(Def::kName, def_options<Def>(), Rule::kNumStates) {
    add_groups(
        options, std::move(groups),
        [this](const GroupOptions& o) { hypers_.push_back(Def::parse(o)); }, true);
    init_states();
  }

 private:
  using Hyper = typename Def::Hyper;
  using Rule = typename Def::Rule;
  static constexpr int kN = Rule::kNumStates;

  int64_t min_8bit_size(size_t group) const override { return hypers_[group].min_8bit_size; }
  void describe(size_t group, OptionMap& out) const override { Def::describe(hypers_[group], out); }

  void run_step(int64_t t) override {
    allocate_states();
    std::vector<Rule> rules;
    for (size_t g = 0; g < groups_.size(); ++g) {
      rules.push_back(Def::rule(hypers_[g], groups_[g].lr, t));
    }
    if (device().is_cuda()) {
      run_cuda(rules);
      return;
    }
    const std::vector<WorkItem> items = work_items();
    const auto count = static_cast<int64_t>(items.size());
    const auto run = [&](int64_t k) {
      const WorkItem& w = items[static_cast<size_t>(k)];
      const Param& p = groups_[w.group].params[w.param];
      switch (p.value.dtype) {
        case DType::kF32:
          run_item<float>(rules[w.group], p, w);
          break;
        case DType::kBF16:
          run_item<BFloat16>(rules[w.group], p, w);
          break;
        case DType::kF16:
          run_item<Half>(rules[w.group], p, w);
          break;
        default:
          break;  // add_groups accepts only the three above
      }
    };
#ifdef _OPENMP
    const int threads = cpu_threads();
    if (threads > 1 && count > 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
      for (int64_t k = 0; k < count; ++k) run(k);
      return;
    }
#endif
    for (int64_t k = 0; k < count; ++k) run(k);
  }

  // Every tensor of every group in one launch; the states are already on the params' GPU.
  void run_cuda(const std::vector<Rule>& rules) {
    std::vector<CudaEightBitTask<Rule>> tasks;
    for (size_t g = 0; g < groups_.size(); ++g) {
      for (size_t i = 0; i < groups_[g].params.size(); ++i) {
        const Param& p = groups_[g].params[i];
        ParamState& st = qstates_[g][i];
        CudaEightBitTask<Rule> task;
        task.rule = rules[g];
        task.param = p.value;
        task.grad = p.grad;
        task.eight_bit = st.eight_bit;
        for (int k = 0; k < kN; ++k) {
          StateBuffer& b = st.buffers[static_cast<size_t>(k)];
          task.codes[k] = b.codes.data();
          task.absmax[k] = b.absmax.data();
          task.values[k] = b.values.data();
        }
        tasks.push_back(task);
      }
    }
    cuda_eightbit_step<Rule, Def::kSkipNonFiniteGrad>(tasks, cuda_state_maps());
  }

  template <typename T>
  void run_item(const Rule& rule, const Param& p, const WorkItem& w) {
    T* value = static_cast<T*>(p.value.data);
    const T* grad = static_cast<const T*>(p.grad.data);
    ParamState& st = qstates_[w.group][w.param];
    if (!st.eight_bit) {
      float* s0 = st.buffers[0].values.data() + w.begin;
      float* s1 = kN > 1 ? st.buffers[kN - 1].values.data() + w.begin : s0;
      f32_state_step(rule, value + w.begin, grad + w.begin, w.end - w.begin, s0, s1);
      return;
    }
    const DynamicMap* maps[2] = {&state_map(0), &state_map(kN - 1)};
    for (int64_t lo = w.begin; lo < w.end; lo += kQuantBlockSize) {
      const int64_t len = w.end - lo < kQuantBlockSize ? w.end - lo : kQuantBlockSize;
      const int64_t block = lo / kQuantBlockSize;
      uint8_t* codes[2] = {st.buffers[0].codes.data() + lo, st.buffers[kN - 1].codes.data() + lo};
      float* absmax[2] = {st.buffers[0].absmax.data() + block,
                          st.buffers[kN - 1].absmax.data() + block};
      eightbit_block_step<Rule, Def::kSkipNonFiniteGrad>(rule, value + lo, grad + lo, len, codes,
                                                         absmax, maps);
    }
  }

  std::vector<Hyper> hypers_;
};

}  // namespace terse::optim_detail

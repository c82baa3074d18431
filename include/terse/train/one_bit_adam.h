#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "terse/comm/algorithms/one_bit_all_reduce.h"
#include "terse/comm/communicator.h"
#include "terse/train/communicating_optimizer.h"

namespace terse {
namespace train_detail {
struct FlatGroup;
class FlatBuffer;
}  // namespace train_detail

// 1-bit Adam (Tang et al., "1-bit Adam: Communication Efficient Large-Scale Training with Adam's
// Convergence Speed", ICML 2021; DeepSpeed's OnebitAdam, specs/compression.md §2.1). With t the
// 1-based step and decay = 1 - lr * weight_decay:
//   warm-up (t <= freeze_step; gradients g averaged over ranks before step()):
//     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//     p = p * decay;  p -= (lr / c1) m / (sqrt(v) / sqrt(c2) + eps)
//   compression (t > freeze_step; g is this rank's LOCAL gradient):
//     m = b1 m + (1 - b1) g;  m = OneBitAllReduce(m)   (all parameters' momenta in one flat
//     buffer, one call per step; errors e_w, e_s persist);  v frozen
//     p = p * decay;  p -= (lr / c1) m / (sqrt(v) / sqrt(c2*) + eps)
// bias_correction=false (default, DeepSpeed's code, which applies none): c1 = c2 = c2* = 1.
// bias_correction=true: c1 = 1 - b1^t, c2 = 1 - b2^t in the warm-up (exactly torch's
// Adam/AdamW) and c2* = 1 - b2^freeze_step frozen with v in the compression phase.
// Warm-up steps equal terse's "adamw" (and "adam" when weight_decay = 0) bit for bit when
// bias_correction=true.
// Options (one value for all groups unless noted; groups may override lr, betas, eps,
// weight_decay): lr 1e-3, betas 0.9/0.999, eps 1e-8, weight_decay 0, freeze_step (required,
// > 0: the number of warm-up steps; DeepSpeed's default 100000 suits no short run, its
// guidance is 15-25% of the run), bias_correction false, eps_inside_sqrt false.
// Differences from DeepSpeed: no dry-run first compression step (DeepSpeed's first step()
// reduces a zero momentum and updates nothing); the errors are saved and restored with the
// state (DeepSpeed resets them on load), so a resume continues exactly; weight decay is applied
// as p *= 1 - lr wd (AdamW's form; DeepSpeed's p -= lr (u + wd p) differs only in rounding);
// eps_inside_sqrt=true is refused (DeepSpeed accepts and ignores it); the momentum mask is
// automatic: coordinates whose frozen v is exactly 0 (no gradient during the warm-up) keep
// m = 0 and do not move (DeepSpeed takes a user exp_avg_mask); no non_freeze groups;
// parameters and gradients must be f32, all on the CPU or all on one GPU.
// On the GPU (CUDA parameters): m, v, the send buffer and the all-reduce's errors live in that
// GPU's memory; the element-wise passes run in the CUDA multi-tensor executor with the CPU's
// Rules (AdamRule, one_bit_adam_rules.h) and the all-reduce on the GPU (one_bit_all_reduce.h),
// so every step gives the CPU's bits. state_dict holds host copies; load_state_dict puts the
// state where the parameters are, so a checkpoint moves between devices.
// State per parameter: m and v (8 bytes) plus the all-reduce's errors (4 + 4/W bytes, on the
// padded flat buffer); the compression phase also keeps a flat f32 send buffer (4 bytes per
// parameter, scratch, not counted by state_bytes()). Its element-wise passes run on
// cpu_threads() threads (results do not depend on the thread count).
class OneBitAdam final : public CommunicatingOptimizer {
 public:
  // Throws InvalidArgument for an unknown option or a bad value (naming option, value and the
  // valid range), a missing freeze_step, no parameters, a parameter that is not f32, parameters
  // on more than one device, or a gradient view that does not match its parameter.
  OneBitAdam(Communicator& comm, const OptionMap& options, std::vector<ParamGroup> groups);
  ~OneBitAdam() override;

  const char* name() const override { return "onebit_adam"; }
  // Throws NumericalError when a gradient is not finite (warm-up: this rank's averaged gradient,
  // the same on every rank; compression: any rank's momentum, on every rank), leaving the
  // parameters, the step count and all state unchanged.
  void step() override;
  int64_t step_count() const override { return step_count_; }
  size_t num_groups() const override;
  double lr(size_t group = 0) const override;
  void set_lr(double lr, size_t group) override;
  void scale_lr(double factor) override;
  double base_lr(size_t group = 0) const override;
  OptionMap options(size_t group = 0) const override;
  // Strings "optimizer"; ints "step_count", "num_groups", "group.G.num_params", "freeze_step",
  // "frozen", "world_size"; floats "group.G.lr"; strings "param.K.name"; tensors "exp_avg",
  // "exp_avg_sq" (flat, all parameters in group order) and "onebit.worker_error",
  // "onebit.server_error". load_state_dict refuses another optimizer, freeze_step, world size
  // or model (InvalidArgument) and damaged values (CorruptData), leaving *this unchanged.
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;
  // m, v and both errors of the all-reduce.
  size_t state_bytes() const override;

  bool wants_averaged_gradients() const override { return step_count_ < freeze_step_; }
  CommStats last_step_comm() const override { return last_comm_; }

  int64_t freeze_step() const { return freeze_step_; }
  bool bias_correction() const { return bias_correction_; }
  // Elements of the flat momentum buffer (all parameters).
  int64_t numel() const { return numel_; }
  const OneBitAllReduce& all_reduce() const { return *onebit_; }

 private:
  void warmup_step(int64_t t);
  void compression_step(int64_t t);
  size_t group_index(const train_detail::FlatGroup& g) const;
  const train_detail::FlatGroup& group_at(size_t group, const char* caller) const;

  Communicator& comm_;
  std::vector<train_detail::FlatGroup> groups_;
  int64_t freeze_step_ = 0;
  bool bias_correction_ = false;
  int64_t numel_ = 0;
  int64_t step_count_ = 0;
  Device device_;  // where the parameters and the state are
  std::unique_ptr<train_detail::FlatBuffer> exp_avg_;
  std::unique_ptr<train_detail::FlatBuffer> exp_avg_sq_;
  // Send buffer of the compression phase (numel_ floats from its first step; scratch, not
  // state): the new momentum goes here so a failed all-reduce leaves m unchanged.
  std::unique_ptr<train_detail::FlatBuffer> send_;
  std::unique_ptr<OneBitAllReduce> onebit_;
  CommStats last_comm_;
};

}  // namespace terse

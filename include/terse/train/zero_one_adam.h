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

// 0/1 Adam (Lu, Li, Zhang, De Sa, He, "Maximizing Communication Efficiency for Large-scale
// Training via 0/1 Adam", ICLR 2023, arXiv 2202.06009; DeepSpeed's ZeroOneAdam,
// specs/compression.md §2.5). t is the 1-based step, u = m / (sqrt(v) + eps) + wd p.
//   variance phase (t <= var_freeze_step):
//     t % var_interval == 0 ("variance step", gradients averaged densely before step()):
//       m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//     otherwise (g LOCAL): m = b1 m + (1 - b1) OneBitAllReduce(g);  v unchanged
//     p -= lr u;  after every var_update_scaler variance steps var_interval doubles (from 1).
//     At the end of step var_freeze_step the all-reduce's errors are zeroed (they switch from
//     gradients to accumulated updates).
//   local phase (t > var_freeze_step, g LOCAL, no communication except at syncs):
//     m = b1 m + (1 - b1) g;  p -= lr u;  lrs += lr
//     if t % local_interval == 0 (sync):  acc = p - p_sync (the local updates since the last
//       sync);  a = OneBitAllReduce(acc (sqrt(v) + eps));  p = p_sync + a / (sqrt(v) + eps);
//       p_sync = p;  m = -a / lrs;  lrs = 0        (p_sync: p at the end of var_freeze_step,
//       then at each sync)
//     local_interval starts at 1 and doubles after every local_step_scaler local steps, up to
//     local_step_clipper.
// All parameters share one flat f32 buffer and one OneBitAllReduce (one call per step that
// communicates). No bias correction (as DeepSpeed's code).
// Options: lr 1e-3, betas 0.9/0.999, eps 1e-8, weight_decay 0 (these four per group),
// var_freeze_step (required, > 0), var_update_scaler 16, local_step_scaler 32678,
// local_step_clipper 16 (integers >= 1).
// Differences from DeepSpeed: it keeps p_sync instead of DeepSpeed's momentum_accumulator
// (acc = sum of -lr u, then p -= acc; p += a / den), same memory: p = p_sync + a / den is then
// bit-identical on every rank after each sync, where DeepSpeed's p - acc + a / den differs
// across ranks by rounding and drifts; no dry-run first step; the errors and every counter are
// saved and restored (resume is exact); the flat buffer is reduced once per step instead of per
// tensor; the variance phase ends after step var_freeze_step (DeepSpeed sets its freeze flag after
// the step whose count exceeds var_freeze_step); with lrs = 0 at a sync (lr was 0) m is set to 0
// instead of 0/0; the momentum mask is automatic (coordinates whose v is exactly 0 keep m = 0 on
// the 1-bit steps and stay at p_sync at syncs); no non_freeze groups; parameters and gradients
// must be f32, all on the CPU or all on one GPU.
// On the GPU (CUDA parameters): m, v, p_sync, the send buffer and the all-reduce's errors live in
// that GPU's memory; the element-wise passes run in the CUDA multi-tensor executor with the CPU's
// Rules (zero_one_adam_rules.h) and the all-reduce on the GPU, so every step gives the CPU's
// bits. state_dict holds host copies; load_state_dict puts the state where the parameters are,
// so a checkpoint moves between devices.
// State per parameter: m, v, p_sync (12 bytes) plus the errors (4 + 4/W bytes, padded); a
// 4-byte send buffer once it first communicates (scratch). Element-wise passes run on
// cpu_threads() threads (results do not depend on the thread count).
class ZeroOneAdam final : public CommunicatingOptimizer {
 public:
  // Throws InvalidArgument as OneBitAdam does (unknown or bad option naming option, value and
  // range; missing var_freeze_step; parameters not f32, or on more than one device).
  ZeroOneAdam(Communicator& comm, const OptionMap& options, std::vector<ParamGroup> groups);
  ~ZeroOneAdam() override;

  const char* name() const override { return "zero_one_adam"; }
  // Throws NumericalError, changing nothing, when a gradient is not finite: on every rank on
  // variance and 1-bit steps and at syncs; on a local step without sync only on the rank that
  // saw it (no collective runs there: the trainer must stop the job; the other ranks time out
  // at their next collective).
  void step() override;
  int64_t step_count() const override { return step_count_; }
  size_t num_groups() const override;
  double lr(size_t group = 0) const override;
  void set_lr(double lr, size_t group) override;
  void scale_lr(double factor) override;
  double base_lr(size_t group = 0) const override;
  OptionMap options(size_t group = 0) const override;
  // As OneBitAdam's layout (with "var_freeze_step", without "frozen") plus tensor
  // "sync_params", ints "var_interval", "var_counter", "local_step_interval",
  // "local_step_counter", floats "group.G.lrs".
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;
  // m, v, p_sync and both errors.
  size_t state_bytes() const override;

  bool wants_averaged_gradients() const override;
  CommStats last_step_comm() const override { return last_comm_; }

  int64_t var_interval() const { return var_interval_; }
  int64_t local_step_interval() const { return local_step_interval_; }
  const OneBitAllReduce& all_reduce() const { return *onebit_; }

 private:
  void variance_phase_step(int64_t t);
  void local_phase_step(int64_t t);
  void check_finite(int64_t t, const char* phase) const;
  // All-reduces send_ in place and records last_comm_.
  OneBitAllReduceReport all_reduce_send();
  const train_detail::FlatGroup& group_at(size_t group, const char* caller) const;

  Communicator& comm_;
  std::vector<train_detail::FlatGroup> groups_;
  int64_t var_freeze_step_ = 0;
  int64_t var_update_scaler_ = 16;
  int64_t local_step_scaler_ = 32678;
  int64_t local_step_clipper_ = 16;
  int64_t numel_ = 0;
  int64_t step_count_ = 0;
  int64_t var_interval_ = 1;
  int64_t var_counter_ = 0;
  int64_t local_step_interval_ = 1;
  int64_t local_step_counter_ = 0;
  Device device_;  // where the parameters and the state are
  std::unique_ptr<train_detail::FlatBuffer> exp_avg_;
  std::unique_ptr<train_detail::FlatBuffer> exp_avg_sq_;
  // p at the end of the variance phase, then at each sync.
  std::unique_ptr<train_detail::FlatBuffer> sync_params_;
  // Send buffer of the 1-bit steps and syncs (numel_ floats from the first; scratch, not
  // state): a failed all-reduce leaves m and p unchanged.
  std::unique_ptr<train_detail::FlatBuffer> send_;
  std::unique_ptr<OneBitAllReduce> onebit_;
  CommStats last_comm_;
};

}  // namespace terse

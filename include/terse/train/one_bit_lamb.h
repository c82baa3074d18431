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

// 1-bit LAMB (Li, Awan, Tang, Rajbhandari, Zhang, He, "1-bit LAMB: Communication Efficient
// Large-Scale Large-Batch Training with LAMB's Convergence Speed", HiPC 2022, arXiv 2104.06069;
// DeepSpeed's OnebitLamb, specs/compression.md §2.6). Per tensor j, with t the 1-based step,
// u = m / (sqrt(v) + eps) + wd p and no bias correction (as DeepSpeed's code):
//   warm-up (t <= freeze_step, g averaged over ranks before step()): LAMB
//     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  (t == freeze_step: v_fresh = v)
//     c = ||p|| / ||u|| clipped to [min_coeff, max_coeff] (c = 1 when either norm is 0)
//     if c != 1: c_freeze = coeff_beta c_freeze + (1 - coeff_beta) c
//     p -= lr c u
//   compression (t > freeze_step, g LOCAL):
//     first step only: s_j = mean_k(||m_k|| / sqrt(n_k)) / (||m_j|| / sqrt(n_j))  (1 when
//       ||m_j|| = 0) so every tensor has the same magnitude in the one fused 1-bit buffer
//     m_prev = m;  m = OneBitAllReduce((b1 m + (1 - b1) g) s_j) / s_j   (all tensors, one call)
//     g~ = (m - b1 m_prev) / (1 - b1);  v_fresh = b2 v_fresh + (1 - b2) g~^2;  v frozen
//     f = max_i((sqrt(v) + eps) / (sqrt(v_fresh) + eps));
//     if wd > 0: r = min(1, ||m / (sqrt(v) + eps)|| / ||u||);  f = f r + (1 - r)
//     f clipped to [factor_min, factor_max], then to last_f (1 +- factor_threshold);  last_f = f
//     p -= lr (c_freeze f) u
// Options: lr 1e-3, betas 0.9/0.999, eps 1e-8, weight_decay 0 (these four per group),
// freeze_step (required, > 0), max_coeff 10, min_coeff 0.01, coeff_beta 0.9, factor_max 4,
// factor_min 0.5, factor_threshold 0.1.
// Every ||.|| is the square root of a double sum of squares in the fixed order of
// terse/kernels/fixed_order_sum.h (the order a vectorised CPU loop and a parallel GPU reduction
// both follow), per tensor.
// Differences from DeepSpeed: no dry-run first step; the errors, the scaling coefficients and
// every per-tensor scalar are checkpointed (resume is exact); with one rank the momentum is
// still 1-bit compressed (DeepSpeed skips the all-reduce); a zero momentum tensor gets s = 1
// and ||u|| = 0 gives r = 1 where DeepSpeed divides by zero; the momentum mask is automatic
// (coordinates whose v is exactly 0 after the warm-up keep m = 0); parameters and gradients must
// be f32, all on the CPU or all on one GPU.
// On the GPU (CUDA parameters): m, v, v_fresh, the scratch buffers and the all-reduce's errors
// live in that GPU's memory; the element-wise passes run in the CUDA multi-tensor executor with
// the CPU's Rules (one_bit_lamb_rules.h), the norms and maxima in cuda_flat_reduce.h's
// reductions (the CPU's order, so the same bits; a few doubles per tensor come back to the host
// for the trust ratios) and the all-reduce on the GPU: every step gives the CPU's bits.
// state_dict holds host copies; load_state_dict puts the state where the parameters are, so a
// checkpoint moves between devices.
// State per parameter: m, v, v_fresh (12 bytes) plus the errors (4 + 4/W bytes, padded) and
// three doubles per tensor (c_freeze, last_f, s); scratch: two flat f32 buffers (8 bytes per
// parameter, not counted by state_bytes()). Element-wise passes run on cpu_threads() threads
// (results do not depend on the thread count).
class OneBitLamb final : public CommunicatingOptimizer {
 public:
  // Throws InvalidArgument for an unknown or bad option (naming option, value and range), a
  // missing freeze_step, or parameters not f32 or on more than one device.
  OneBitLamb(Communicator& comm, const OptionMap& options, std::vector<ParamGroup> groups);
  ~OneBitLamb() override;

  const char* name() const override { return "onebit_lamb"; }
  // Throws NumericalError, changing nothing, on every rank when a gradient is not finite.
  void step() override;
  int64_t step_count() const override { return step_count_; }
  size_t num_groups() const override;
  double lr(size_t group = 0) const override;
  void set_lr(double lr, size_t group) override;
  void scale_lr(double factor) override;
  double base_lr(size_t group = 0) const override;
  OptionMap options(size_t group = 0) const override;
  // As OneBitAdam's layout plus tensor "exp_avg_sq_fresh", int "scaling_ready" and floats
  // "param.K.lamb_coeff_freeze", "param.K.last_factor", "param.K.scaling_coeff".
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;
  // m, v, v_fresh, both errors and the per-tensor scalars.
  size_t state_bytes() const override;

  bool wants_averaged_gradients() const override { return step_count_ < freeze_step_; }
  CommStats last_step_comm() const override { return last_comm_; }

  // The trust ratio each tensor (in group order) used in the last step.
  const std::vector<double>& last_coeffs() const { return last_coeffs_; }
  const OneBitAllReduce& all_reduce() const { return *onebit_; }

 private:
  // Per tensor, in group order.
  struct TensorState {
    double coeff_freeze = 0;
    double last_factor = 1;
    double scaling = 1;
  };

  void warmup_step(int64_t t);
  void compression_step(int64_t t);
  // p += -lr * coeffs[j] * u for every tensor j (the last pass of every step).
  void apply_update(const std::vector<double>& coeffs);
  // The index in group order of parameter i of `g`.
  size_t tensor_index(const train_detail::FlatGroup& g, size_t i) const;
  // Allocates a scratch buffer of numel_ floats on device_ at its first use.
  void ensure(std::unique_ptr<train_detail::FlatBuffer>& buffer) const;
  const train_detail::FlatGroup& group_at(size_t group, const char* caller) const;

  Communicator& comm_;
  std::vector<train_detail::FlatGroup> groups_;
  int64_t freeze_step_ = 0;
  double max_coeff_ = 10, min_coeff_ = 0.01, coeff_beta_ = 0.9;
  double factor_max_ = 4, factor_min_ = 0.5, factor_threshold_ = 0.1;
  int64_t numel_ = 0;
  int64_t step_count_ = 0;
  bool scaling_ready_ = false;
  Device device_;                     // where the parameters and the state are
  std::vector<size_t> first_tensor_;  // per group, the index of its first tensor
  std::unique_ptr<train_detail::FlatBuffer> exp_avg_;
  std::unique_ptr<train_detail::FlatBuffer> exp_avg_sq_;
  std::unique_ptr<train_detail::FlatBuffer> exp_avg_sq_fresh_;
  // Scratch (numel_ floats from their first use, not state): the send buffer (then each
  // element's ratio, then m / (sqrt(v) + eps)) and u, whose per-tensor norms the step needs.
  std::unique_ptr<train_detail::FlatBuffer> send_;
  std::unique_ptr<train_detail::FlatBuffer> scratch_;
  std::vector<TensorState> tensors_;
  std::vector<double> last_coeffs_;
  std::unique_ptr<OneBitAllReduce> onebit_;
  CommStats last_comm_;
};

}  // namespace terse

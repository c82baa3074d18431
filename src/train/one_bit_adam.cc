#include "terse/train/one_bit_adam.h"

#include <chrono>
#include <cmath>
#include <utility>

#include "../optim/option_values.h"
#include "one_bit_optimizer_util.h"
#include "terse/core/check.h"
#include "terse/kernels/cpu_chunks.h"
#include "terse/kernels/cpu_multi_tensor.h"
#include "terse/kernels/cpu_threads.h"

namespace terse {

using train_detail::FlatGroup;
using train_detail::param_label;

namespace {

const char* const kName = "onebit_adam";
// Every option with its default ("" = required); the first four may differ per group.
const std::vector<train_detail::OptionDefault> kOptions = {{"lr", "0.001"},
                                                           {"betas", "0.9/0.999"},
                                                           {"eps", "1e-08"},
                                                           {"weight_decay", "0"},
                                                           {"freeze_step", ""},
                                                           {"bias_correction", "false"},
                                                           {"eps_inside_sqrt", "false"},
                                                           {"defer_worker_error", "true"}};

using Clock = std::chrono::steady_clock;

}  // namespace

OneBitAdam::OneBitAdam(Communicator& comm, const OptionMap& options, std::vector<ParamGroup> groups)
    : comm_(comm) {
  train_detail::check_known_options(kName, kOptions, options, kName);
  freeze_step_ = train_detail::int_option(
      kName, kOptions, options, "freeze_step", 1, true,
      "the number of dense Adam warm-up steps before the 1-bit compression phase; DeepSpeed "
      "suggests 15-25% of the run's steps, e.g. onebit_adam:freeze_step=1000");
  bias_correction_ =
      optim_detail::parse_bool(std::string(kName) + " option 'bias_correction'",
                               train_detail::option_value(kOptions, options, "bias_correction"));
  const bool eps_inside =
      optim_detail::parse_bool(std::string(kName) + " option 'eps_inside_sqrt'",
                               train_detail::option_value(kOptions, options, "eps_inside_sqrt"));
  TERSE_CHECK(!eps_inside, InvalidArgument, kName, ": option 'eps_inside_sqrt' is true; only ",
              "false (eps added outside the square root) is supported (DeepSpeed's 1-bit Adam ",
              "accepts the option but ignores it); drop it or set it to false");
  groups_ = train_detail::make_flat_groups(kName, kOptions, options, std::move(groups), &numel_);
  exp_avg_.assign(static_cast<size_t>(numel_), 0.0f);
  exp_avg_sq_.assign(static_cast<size_t>(numel_), 0.0f);
  // The all-reduce's element-wise passes use the same threads as the update passes (no bit
  // depends on the count).
  onebit_ = train_detail::make_one_bit_all_reduce(kName, kOptions, options, comm_, numel_);
}

OneBitAdam::~OneBitAdam() = default;

size_t OneBitAdam::num_groups() const { return groups_.size(); }

void OneBitAdam::step() {
  const int64_t t = step_count_ + 1;
  if (wants_averaged_gradients()) {
    warmup_step(t);
  } else {
    compression_step(t);
  }
  step_count_ = t;
}

void OneBitAdam::warmup_step(int64_t t) {
  // The averaged gradient is the same on every rank, so every rank stops here
  // alike.
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const Param& p = groups_[g].params[i];
      const float* grad = p.grad.as<float>();
      for (int64_t k = 0; k < p.grad.numel; ++k) {
        TERSE_CHECK(std::isfinite(grad[k]), NumericalError, kName, " step ", t, " (warm-up) on ",
                    "rank ", comm_.rank(), ": the gradient of ", param_label(p, g, i), " holds ",
                    grad[k], " at element ", k, "; lower the lr or clip gradients ",
                    "and resume from the last good checkpoint");
      }
    }
  }
  std::vector<CpuTensorTask<AdamRule<false>>> tasks;
  for (auto& grp : groups_) {
    auto rule = AdamRule<false>::for_step(grp.lr, grp.beta1, grp.beta2, grp.eps, grp.weight_decay,
                                          /*decoupled=*/true, false, t);
    if (!bias_correction_) {
      rule.neg_step_size = static_cast<float>(-grp.lr);
      rule.bias_correction2_sqrt = 1.0f;
    }
    for (size_t i = 0; i < grp.params.size(); ++i) {
      const Param& p = grp.params[i];
      if (p.value.numel == 0) continue;
      tasks.emplace_back();
      auto& task = tasks.back();
      task.rule = rule;
      task.param = p.value;
      task.grad = p.grad;
      const auto off = static_cast<size_t>(grp.offsets[i]);
      task.states[0] = exp_avg_.data() + off;
      task.states[1] = exp_avg_sq_.data() + off;
    }
  }
  cpu_multi_tensor_apply(tasks);
  last_comm_ = CommStats{};
}

void OneBitAdam::compression_step(int64_t t) {
  // Tensor i of the flat buffer is params[index] of group `group`; chunks of the flat buffer go
  // to cpu_threads() threads (element-wise: the result does not depend on the thread count).
  struct Ref {
    const FlatGroup* group;
    const Param* param;
    size_t offset;
  };
  std::vector<Ref> refs;
  std::vector<int64_t> bounds = {0};
  for (const auto& grp : groups_) {
    for (size_t i = 0; i < grp.params.size(); ++i) {
      refs.push_back(Ref{&grp, &grp.params[i], static_cast<size_t>(grp.offsets[i])});
      bounds.push_back(grp.offsets[i] + grp.params[i].value.numel);
    }
  }
  // The new momentum goes to the send buffer first: if any rank's is not finite the
  // all-reduce throws on every rank and m stays as it was.
  send_.resize(static_cast<size_t>(numel_));
  cpu_for_each_chunk_piece(bounds, cpu_threads(), [&](size_t i, int64_t begin, int64_t end) {
    const Ref& r = refs[i];
    const auto beta1 = static_cast<float>(r.group->beta1);
    const auto one_minus_beta1 = static_cast<float>(1.0 - r.group->beta1);
    const float* grad = r.param->grad.as<float>();
    const float* m = exp_avg_.data() + r.offset;
    float* out = send_.data() + r.offset;
    for (int64_t k = begin; k < end; ++k) out[k] = beta1 * m[k] + one_minus_beta1 * grad[k];
  });
  const auto t0 = Clock::now();
  const OneBitAllReduceReport report = onebit_->all_reduce(TensorView::of(send_.data(), numel_));
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  exp_avg_.swap(send_);  // send_ keeps the old m as scratch
  cpu_for_each_chunk_piece(bounds, cpu_threads(), [&](size_t i, int64_t begin, int64_t end) {
    const Ref& r = refs[i];
    const FlatGroup& grp = *r.group;
    const double c1 = bias_correction_ ? 1.0 - std::pow(grp.beta1, static_cast<double>(t)) : 1.0;
    const double c2 =
        bias_correction_ ? 1.0 - std::pow(grp.beta2, static_cast<double>(freeze_step_)) : 1.0;
    const auto decay = static_cast<float>(1.0 - grp.lr * grp.weight_decay);
    const auto neg_step_size = static_cast<float>(-grp.lr / c1);
    const auto c2_sqrt = static_cast<float>(std::sqrt(c2));
    const auto eps = static_cast<float>(grp.eps);
    float* value = r.param->value.as<float>();
    float* m = exp_avg_.data() + r.offset;
    const float* v = exp_avg_sq_.data() + r.offset;
    for (int64_t k = begin; k < end; ++k) {
      // The momentum mask: a coordinate whose frozen variance is exactly 0 never had a
      // gradient (a dead unit, an unused embedding row); one bit cannot say 0, so its
      // all-reduced momentum is +-scale and m / (0 + eps) would throw it by ~1e8 x lr.
      // Adam would not move it: zero its momentum (DeepSpeed needs the user's exp_avg_mask).
      m[k] = v[k] > 0.0f ? m[k] : 0.0f;
      const float pk = value[k] * decay;
      const float den = std::sqrt(v[k]) / c2_sqrt + eps;
      value[k] = pk + neg_step_size * (m[k] / den);
    }
  });
  last_comm_ = train_detail::one_bit_comm_stats(report, numel_, comm_.size(), seconds);
}

const FlatGroup& OneBitAdam::group_at(size_t group, const char* caller) const {
  TERSE_CHECK(group < groups_.size(), InvalidArgument, kName, ".", caller, ": group ", group,
              " does not exist; this optimizer has ", groups_.size(), " group(s)");
  return groups_[group];
}

double OneBitAdam::lr(size_t group) const { return group_at(group, "lr").lr; }

double OneBitAdam::base_lr(size_t group) const { return group_at(group, "base_lr").base_lr; }

void OneBitAdam::set_lr(double lr, size_t group) {
  group_at(group, "set_lr");
  TERSE_CHECK(std::isfinite(lr) && lr >= 0, InvalidArgument, kName,
              ".set_lr: lr must be a finite number >= 0, got ", lr);
  groups_[group].lr = lr;
}

void OneBitAdam::scale_lr(double factor) {
  TERSE_CHECK(std::isfinite(factor) && factor >= 0, InvalidArgument, kName,
              ".scale_lr: factor must be a finite number >= 0, got ", factor);
  for (auto& grp : groups_) grp.lr = grp.base_lr * factor;
}

OptionMap OneBitAdam::options(size_t group) const {
  OptionMap out;
  train_detail::add_group_options(group_at(group, "options"), &out);
  out["freeze_step"] = std::to_string(freeze_step_);
  out["bias_correction"] = bias_correction_ ? "true" : "false";
  out["eps_inside_sqrt"] = "false";
  out["defer_worker_error"] = onebit_->defers_worker_error() ? "true" : "false";
  return out;
}

size_t OneBitAdam::state_bytes() const {
  return (exp_avg_.size() + exp_avg_sq_.size() + onebit_->worker_error().size() +
          onebit_->server_error().size()) *
         sizeof(float);
}

StateDict OneBitAdam::state_dict() const {
  StateDict sd = onebit_->state_dict("onebit.");
  train_detail::save_groups(kName, groups_, &sd);
  sd.ints["step_count"] = step_count_;
  sd.ints["freeze_step"] = freeze_step_;
  sd.ints["frozen"] = wants_averaged_gradients() ? 0 : 1;
  sd.ints["world_size"] = comm_.size();
  train_detail::save_flat(exp_avg_, "exp_avg", &sd);
  train_detail::save_flat(exp_avg_sq_, "exp_avg_sq", &sd);
  return sd;
}

void OneBitAdam::load_state_dict(const StateDict& sd) {
  const std::vector<double> lrs = train_detail::load_groups(kName, groups_, sd);
  const int64_t steps = sd.int_value("step_count");
  TERSE_CHECK(steps >= 0, CorruptData, "load_state_dict: step_count is ", steps,
              "; the state dict is damaged");
  const int64_t freeze = sd.int_value("freeze_step");
  TERSE_CHECK(freeze == freeze_step_, InvalidArgument, "load_state_dict: the state dict was ",
              "saved with freeze_step=", freeze, " but this ", kName,
              " has freeze_step=", freeze_step_, "; resume with the freeze_step it was saved with");
  const int64_t frozen = sd.int_value("frozen");
  TERSE_CHECK(frozen == (steps >= freeze ? 1 : 0), CorruptData, "load_state_dict: frozen is ",
              frozen, " at step ", steps, " with freeze_step ", freeze,
              "; the state dict is damaged");
  const int64_t world = sd.int_value("world_size");
  TERSE_CHECK(world == comm_.size(), InvalidArgument, "load_state_dict: the state dict was saved ",
              "on ", world, " rank(s) but this run has ", comm_.size(),
              " (the 1-bit errors are per rank); resume on the same number of ranks");
  std::vector<float> m = train_detail::load_flat(sd, "exp_avg", numel_);
  std::vector<float> v = train_detail::load_flat(sd, "exp_avg_sq", numel_);
  // Last check, and it leaves the errors unchanged when it throws.
  onebit_->load_state_dict(sd, "onebit.");
  exp_avg_.swap(m);
  exp_avg_sq_.swap(v);
  for (size_t g = 0; g < groups_.size(); ++g) groups_[g].lr = lrs[g];
  step_count_ = steps;
  last_comm_ = CommStats{};
}

}  // namespace terse

#include "terse/train/one_bit_adam.h"

#include <array>
#include <chrono>
#include <cmath>
#include <utility>

#include "../optim/option_values.h"
#include "one_bit_optimizer_util.h"
#include "terse/core/check.h"
#include "terse/kernels/cuda_multi_tensor.h"
#include "terse/kernels/one_bit_adam_rules.h"

namespace terse {

using train_detail::FlatBuffer;
using train_detail::FlatGroup;

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
  groups_ = train_detail::make_flat_groups(kName, kOptions, options, std::move(groups), &numel_,
                                           &device_);
  exp_avg_ = std::make_unique<FlatBuffer>(device_, numel_);
  exp_avg_sq_ = std::make_unique<FlatBuffer>(device_, numel_);
  send_ = std::make_unique<FlatBuffer>();
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
  // The averaged gradient is the same on every rank, so every rank stops here alike.
  train_detail::check_finite_grads(kName, groups_, t, "warm-up", comm_.rank());
  std::vector<AdamRule<false>> rules;
  for (const auto& grp : groups_) {
    auto rule = AdamRule<false>::for_step(grp.lr, grp.beta1, grp.beta2, grp.eps, grp.weight_decay,
                                          /*decoupled=*/true, false, t);
    if (!bias_correction_) {
      rule.neg_step_size = static_cast<float>(-grp.lr);
      rule.bias_correction2_sqrt = 1.0f;
    }
    rules.push_back(rule);
  }
  train_detail::apply_flat(
      groups_, device_, [&](const FlatGroup& g) { return rules[group_index(g)]; },
      [](const Param& p, size_t) { return p.grad; },
      std::array<float*, 2>{exp_avg_->data(), exp_avg_sq_->data()});
  last_comm_ = CommStats{};
}

void OneBitAdam::compression_step(int64_t t) {
  // The new momentum goes to the send buffer first: if any rank's is not finite the
  // all-reduce throws on every rank and m stays as it was.
  if (send_->numel() != numel_) *send_ = FlatBuffer(device_, numel_);
  const auto grad = [](const Param& p, size_t) { return p.grad; };
  train_detail::apply_flat(
      groups_, device_,
      [](const FlatGroup& g) {
        return OneBitMomentumRule{static_cast<float>(g.beta1), static_cast<float>(1.0 - g.beta1)};
      },
      grad, std::array<float*, 2>{exp_avg_->data(), send_->data()});
  const auto t0 = Clock::now();
  const OneBitAllReduceReport report = onebit_->all_reduce(send_->view());
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  exp_avg_.swap(send_);  // send_ keeps the old m as scratch
  train_detail::apply_flat(
      groups_, device_,
      [&](const FlatGroup& grp) {
        const double c1 =
            bias_correction_ ? 1.0 - std::pow(grp.beta1, static_cast<double>(t)) : 1.0;
        const double c2 =
            bias_correction_ ? 1.0 - std::pow(grp.beta2, static_cast<double>(freeze_step_)) : 1.0;
        OneBitAdamUpdateRule r;
        r.decay = static_cast<float>(1.0 - grp.lr * grp.weight_decay);
        r.neg_step_size = static_cast<float>(-grp.lr / c1);
        r.c2_sqrt = static_cast<float>(std::sqrt(c2));
        r.eps = static_cast<float>(grp.eps);
        return r;
      },
      grad, std::array<float*, 2>{exp_avg_->data(), exp_avg_sq_->data()});
  if (device_.is_cuda()) cuda_synchronize();  // a failure of the step belongs to this step
  last_comm_ = train_detail::one_bit_comm_stats(report, numel_, comm_.size(), seconds);
}

size_t OneBitAdam::group_index(const FlatGroup& g) const {
  return static_cast<size_t>(&g - groups_.data());
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
  return 2 * static_cast<size_t>(numel_) * sizeof(float) + onebit_->state_bytes();
}

StateDict OneBitAdam::state_dict() const {
  StateDict sd = onebit_->state_dict("onebit.");
  train_detail::save_groups(kName, groups_, &sd);
  sd.ints["step_count"] = step_count_;
  sd.ints["freeze_step"] = freeze_step_;
  sd.ints["frozen"] = wants_averaged_gradients() ? 0 : 1;
  sd.ints["world_size"] = comm_.size();
  train_detail::save_flat(*exp_avg_, "exp_avg", &sd);
  train_detail::save_flat(*exp_avg_sq_, "exp_avg_sq", &sd);
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
  exp_avg_->assign(m);
  exp_avg_sq_->assign(v);
  for (size_t g = 0; g < groups_.size(); ++g) groups_[g].lr = lrs[g];
  step_count_ = steps;
  last_comm_ = CommStats{};
}

}  // namespace terse

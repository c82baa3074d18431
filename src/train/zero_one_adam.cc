#include "terse/train/zero_one_adam.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <utility>

#include "one_bit_optimizer_util.h"
#include "terse/core/check.h"
#include "terse/kernels/cuda_multi_tensor.h"
#include "terse/kernels/zero_one_adam_rules.h"

namespace terse {

using train_detail::FlatBuffer;
using train_detail::FlatGroup;

namespace {

const char* const kName = "zero_one_adam";
const std::vector<train_detail::OptionDefault> kOptions = {{"lr", "0.001"},
                                                           {"betas", "0.9/0.999"},
                                                           {"eps", "1e-08"},
                                                           {"weight_decay", "0"},
                                                           {"var_freeze_step", ""},
                                                           {"var_update_scaler", "16"},
                                                           {"local_step_scaler", "32678"},
                                                           {"local_step_clipper", "16"},
                                                           {"defer_worker_error", "true"}};

using Clock = std::chrono::steady_clock;

// Per-group float constants of one step, as every element uses them.
ZeroOneAdamConsts consts_of(const FlatGroup& g) {
  ZeroOneAdamConsts c;
  c.b1 = static_cast<float>(g.beta1);
  c.omb1 = static_cast<float>(1.0 - g.beta1);
  c.b2 = static_cast<float>(g.beta2);
  c.omb2 = static_cast<float>(1.0 - g.beta2);
  c.neg_lr = static_cast<float>(-g.lr);
  c.wd = static_cast<float>(g.weight_decay);
  c.eps = static_cast<float>(g.eps);
  return c;
}

// The parameter's gradient, the g of most passes.
TensorView grad_of(const Param& p, size_t /*offset*/) { return p.grad; }

}  // namespace

ZeroOneAdam::ZeroOneAdam(Communicator& comm, const OptionMap& options,
                         std::vector<ParamGroup> groups)
    : comm_(comm) {
  train_detail::check_known_options(kName, kOptions, options, kName);
  var_freeze_step_ = train_detail::int_option(
      kName, kOptions, options, "var_freeze_step", 1, true,
      "the step after which the variance is frozen and local steps begin; the tutorial uses "
      "1000 for BERT, e.g. zero_one_adam:var_freeze_step=1000");
  var_update_scaler_ =
      train_detail::int_option(kName, kOptions, options, "var_update_scaler", 1, false,
                               "variance updates per doubling of their interval; 16 is usual");
  local_step_scaler_ =
      train_detail::int_option(kName, kOptions, options, "local_step_scaler", 1, false,
                               "local steps per doubling of the sync interval; 32678 is usual");
  local_step_clipper_ =
      train_detail::int_option(kName, kOptions, options, "local_step_clipper", 1, false,
                               "the largest sync interval in steps; 16 is usual");
  groups_ = train_detail::make_flat_groups(kName, kOptions, options, std::move(groups), &numel_,
                                           &device_);
  exp_avg_ = std::make_unique<FlatBuffer>(device_, numel_);
  exp_avg_sq_ = std::make_unique<FlatBuffer>(device_, numel_);
  sync_params_ = std::make_unique<FlatBuffer>(device_, numel_);
  send_ = std::make_unique<FlatBuffer>();
  // The all-reduce's element-wise passes use the same threads as the update passes (no bit
  // depends on the count).
  onebit_ = train_detail::make_one_bit_all_reduce(kName, kOptions, options, comm_, numel_);
}

ZeroOneAdam::~ZeroOneAdam() = default;

size_t ZeroOneAdam::num_groups() const { return groups_.size(); }

bool ZeroOneAdam::wants_averaged_gradients() const {
  const int64_t t = step_count_ + 1;
  return t <= var_freeze_step_ && t % var_interval_ == 0;
}

void ZeroOneAdam::step() {
  const int64_t t = step_count_ + 1;
  if (t <= var_freeze_step_) {
    variance_phase_step(t);
  } else {
    local_phase_step(t);
  }
  if (device_.is_cuda()) cuda_synchronize();  // a failure of the step belongs to this step
  step_count_ = t;
}

void ZeroOneAdam::check_finite(int64_t t, const char* phase) const {
  train_detail::check_finite_grads(kName, groups_, t, phase, comm_.rank());
}

OneBitAllReduceReport ZeroOneAdam::all_reduce_send() {
  const auto t0 = Clock::now();
  const OneBitAllReduceReport report = onebit_->all_reduce(send_->view());
  last_comm_ = train_detail::one_bit_comm_stats(
      report, numel_, comm_.size(), std::chrono::duration<double>(Clock::now() - t0).count());
  return report;
}

void ZeroOneAdam::variance_phase_step(int64_t t) {
  using train_detail::apply_flat;
  const bool variance_step = t % var_interval_ == 0;
  last_comm_ = CommStats{};
  const std::array<float*, 2> mv = {exp_avg_->data(), exp_avg_sq_->data()};
  if (variance_step) {
    // The averaged gradient is the same on every rank, so every rank stops here alike.
    check_finite(t, "variance update");
    apply_flat(
        groups_, device_, [](const FlatGroup& g) { return ZeroOneVarianceRule{consts_of(g)}; },
        grad_of, mv);
  } else {
    // The local gradients, 1-bit averaged; a non-finite one stops every rank in the call.
    if (send_->numel() != numel_) *send_ = FlatBuffer(device_, numel_);
    train_detail::copy_grads(groups_, *send_);
    all_reduce_send();
    // Momentum mask (as 1-bit Adam's): where v is still exactly 0 no averaged gradient was ever
    // seen; one bit cannot say 0, and m / eps would throw the coordinate away.
    apply_flat(
        groups_, device_,
        [](const FlatGroup& g) { return ZeroOneMomentumRule<true>{consts_of(g)}; },
        [&](const Param& p, size_t o) {
          return send_->view(static_cast<int64_t>(o), p.value.numel);
        },
        mv);
  }
  if (variance_step && ++var_counter_ == var_update_scaler_) {
    var_counter_ = 0;
    var_interval_ *= 2;
  }
  if (t == var_freeze_step_) {
    // From here on the errors accumulate updates, not gradients; local steps start from here.
    onebit_->reset_errors();
    train_detail::copy_params(groups_, *sync_params_);
  }
}

void ZeroOneAdam::local_phase_step(int64_t t) {
  using train_detail::apply_flat;
  const bool sync = t % local_step_interval_ == 0;
  last_comm_ = CommStats{};
  if (!sync) {
    // No collective runs on this step: only this rank can know (see step()).
    check_finite(t, "local step");
    for (auto& grp : groups_) grp.lrs += grp.lr;
    apply_flat(
        groups_, device_,
        [](const FlatGroup& g) { return ZeroOneMomentumRule<false>{consts_of(g)}; }, grad_of,
        std::array<float*, 2>{exp_avg_->data(), exp_avg_sq_->data()});
  } else {
    // The local step into the send buffer only (acc = p_new - p_sync, scaled by the
    // denominator), so a failed all-reduce leaves every rank unchanged; then
    // p = p_sync + a / den on every rank.
    if (send_->numel() != numel_) *send_ = FlatBuffer(device_, numel_);
    apply_flat(
        groups_, device_, [](const FlatGroup& g) { return ZeroOneSyncSendRule{consts_of(g)}; },
        grad_of,
        std::array<float*, 4>{exp_avg_->data(), exp_avg_sq_->data(), sync_params_->data(),
                              send_->data()});
    all_reduce_send();
    for (auto& grp : groups_) grp.lrs += grp.lr;
    apply_flat(
        groups_, device_,
        [](const FlatGroup& g) {
          ZeroOneSyncApplyRule r;
          r.eps = static_cast<float>(g.eps);
          r.lrs = static_cast<float>(g.lrs);
          r.lrs_positive = g.lrs > 0;
          return r;
        },
        [&](const Param& p, size_t o) {
          return send_->view(static_cast<int64_t>(o), p.value.numel);
        },
        std::array<float*, 3>{exp_avg_->data(), exp_avg_sq_->data(), sync_params_->data()});
    for (auto& grp : groups_) grp.lrs = 0;
  }
  if (++local_step_counter_ == local_step_scaler_) {
    local_step_counter_ = 0;
    local_step_interval_ = std::min(local_step_clipper_, local_step_interval_ * 2);
  }
}

const FlatGroup& ZeroOneAdam::group_at(size_t group, const char* caller) const {
  TERSE_CHECK(group < groups_.size(), InvalidArgument, kName, ".", caller, ": group ", group,
              " does not exist; this optimizer has ", groups_.size(), " group(s)");
  return groups_[group];
}

double ZeroOneAdam::lr(size_t group) const { return group_at(group, "lr").lr; }

double ZeroOneAdam::base_lr(size_t group) const { return group_at(group, "base_lr").base_lr; }

void ZeroOneAdam::set_lr(double lr, size_t group) {
  group_at(group, "set_lr");
  TERSE_CHECK(std::isfinite(lr) && lr >= 0, InvalidArgument, kName,
              ".set_lr: lr must be a finite number >= 0, got ", lr);
  groups_[group].lr = lr;
}

void ZeroOneAdam::scale_lr(double factor) {
  TERSE_CHECK(std::isfinite(factor) && factor >= 0, InvalidArgument, kName,
              ".scale_lr: factor must be a finite number >= 0, got ", factor);
  for (auto& grp : groups_) grp.lr = grp.base_lr * factor;
}

OptionMap ZeroOneAdam::options(size_t group) const {
  OptionMap out;
  train_detail::add_group_options(group_at(group, "options"), &out);
  out["var_freeze_step"] = std::to_string(var_freeze_step_);
  out["var_update_scaler"] = std::to_string(var_update_scaler_);
  out["local_step_scaler"] = std::to_string(local_step_scaler_);
  out["local_step_clipper"] = std::to_string(local_step_clipper_);
  out["defer_worker_error"] = onebit_->defers_worker_error() ? "true" : "false";
  return out;
}

size_t ZeroOneAdam::state_bytes() const {
  return 3 * static_cast<size_t>(numel_) * sizeof(float) + onebit_->state_bytes();
}

StateDict ZeroOneAdam::state_dict() const {
  StateDict sd = onebit_->state_dict("onebit.");
  train_detail::save_groups(kName, groups_, &sd);
  sd.ints["step_count"] = step_count_;
  sd.ints["var_freeze_step"] = var_freeze_step_;
  sd.ints["world_size"] = comm_.size();
  sd.ints["var_interval"] = var_interval_;
  sd.ints["var_counter"] = var_counter_;
  sd.ints["local_step_interval"] = local_step_interval_;
  sd.ints["local_step_counter"] = local_step_counter_;
  for (size_t g = 0; g < groups_.size(); ++g) {
    sd.floats["group." + std::to_string(g) + ".lrs"] = groups_[g].lrs;
  }
  train_detail::save_flat(*exp_avg_, "exp_avg", &sd);
  train_detail::save_flat(*exp_avg_sq_, "exp_avg_sq", &sd);
  train_detail::save_flat(*sync_params_, "sync_params", &sd);
  return sd;
}

void ZeroOneAdam::load_state_dict(const StateDict& sd) {
  const std::vector<double> lr = train_detail::load_groups(kName, groups_, sd);
  const int64_t steps = sd.int_value("step_count");
  TERSE_CHECK(steps >= 0, CorruptData, "load_state_dict: step_count is ", steps,
              "; the state dict is damaged");
  const int64_t freeze = sd.int_value("var_freeze_step");
  TERSE_CHECK(freeze == var_freeze_step_, InvalidArgument, "load_state_dict: the state dict ",
              "was saved with var_freeze_step=", freeze, " but this ", kName,
              " has var_freeze_step=", var_freeze_step_,
              "; resume with the var_freeze_step it was saved with");
  const int64_t world = sd.int_value("world_size");
  TERSE_CHECK(world == comm_.size(), InvalidArgument, "load_state_dict: the state dict was saved ",
              "on ", world, " rank(s) but this run has ", comm_.size(),
              " (the 1-bit errors are per rank); resume on the same number of ranks");
  const int64_t vi = sd.int_value("var_interval");
  const int64_t vc = sd.int_value("var_counter");
  const int64_t li = sd.int_value("local_step_interval");
  const int64_t lc = sd.int_value("local_step_counter");
  TERSE_CHECK(vi >= 1 && vc >= 0 && vc < var_update_scaler_, InvalidArgument,
              "load_state_dict: var_interval ", vi, " / var_counter ", vc,
              " do not fit var_update_scaler=", var_update_scaler_,
              "; resume with the options it was saved with");
  TERSE_CHECK(li >= 1 && li <= local_step_clipper_ && lc >= 0 && lc < local_step_scaler_,
              InvalidArgument, "load_state_dict: local_step_interval ", li,
              " / local_step_counter ", lc, " do not fit local_step_clipper=", local_step_clipper_,
              " and local_step_scaler=", local_step_scaler_,
              "; resume with the options it was saved with");
  std::vector<double> lrs(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    lrs[g] = sd.float_value("group." + std::to_string(g) + ".lrs");
    TERSE_CHECK(std::isfinite(lrs[g]) && lrs[g] >= 0, CorruptData, "load_state_dict: group ", g,
                " has lrs ", lrs[g], "; the state dict is damaged");
  }
  std::vector<float> m = train_detail::load_flat(sd, "exp_avg", numel_);
  std::vector<float> v = train_detail::load_flat(sd, "exp_avg_sq", numel_);
  std::vector<float> ps = train_detail::load_flat(sd, "sync_params", numel_);
  onebit_->load_state_dict(sd, "onebit.");  // last: leaves the errors unchanged on error
  exp_avg_->assign(m);
  exp_avg_sq_->assign(v);
  sync_params_->assign(ps);
  for (size_t g = 0; g < groups_.size(); ++g) {
    groups_[g].lr = lr[g];
    groups_[g].lrs = lrs[g];
  }
  step_count_ = steps;
  var_interval_ = vi;
  var_counter_ = vc;
  local_step_interval_ = li;
  local_step_counter_ = lc;
  last_comm_ = CommStats{};
}

}  // namespace terse

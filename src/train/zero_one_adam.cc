#include "terse/train/zero_one_adam.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "one_bit_optimizer_util.h"
#include "terse/core/check.h"

namespace terse {

using train_detail::FlatGroup;
using train_detail::param_label;

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
struct Consts {
  float b1, omb1, b2, omb2, neg_lr, wd, eps;
  explicit Consts(const FlatGroup& g)
      : b1(static_cast<float>(g.beta1)),
        omb1(static_cast<float>(1.0 - g.beta1)),
        b2(static_cast<float>(g.beta2)),
        omb2(static_cast<float>(1.0 - g.beta2)),
        neg_lr(static_cast<float>(-g.lr)),
        wd(static_cast<float>(g.weight_decay)),
        eps(static_cast<float>(g.eps)) {}
};

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
  Device device;
  groups_ =
      train_detail::make_flat_groups(kName, kOptions, options, std::move(groups), &numel_, &device);
  train_detail::require_cpu(kName, device);
  exp_avg_.assign(static_cast<size_t>(numel_), 0.0f);
  exp_avg_sq_.assign(static_cast<size_t>(numel_), 0.0f);
  sync_params_.assign(static_cast<size_t>(numel_), 0.0f);
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
  step_count_ = t;
}

void ZeroOneAdam::check_finite(int64_t t, const char* phase) const {
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const Param& p = groups_[g].params[i];
      const float* grad = p.grad.as<float>();
      for (int64_t k = 0; k < p.grad.numel; ++k) {
        TERSE_CHECK(std::isfinite(grad[k]), NumericalError, kName, " step ", t, " (", phase,
                    ") on rank ", comm_.rank(), ": the gradient of ", param_label(p, g, i),
                    " holds ", grad[k], " at element ", k, "; lower the lr or clip gradients ",
                    "and resume from the last good checkpoint");
      }
    }
  }
}

void ZeroOneAdam::variance_phase_step(int64_t t) {
  using train_detail::for_each_flat_piece;
  const bool variance_step = t % var_interval_ == 0;
  last_comm_ = CommStats{};
  if (variance_step) {
    // The averaged gradient is the same on every rank, so every rank stops here alike.
    check_finite(t, "variance update");
    for_each_flat_piece(
        groups_, [&](const FlatGroup& grp, const Param& p, size_t o, int64_t begin, int64_t end) {
          const Consts c(grp);
          const float* g = p.grad.as<float>();
          float* m = exp_avg_.data() + o;
          float* v = exp_avg_sq_.data() + o;
          for (int64_t k = begin; k < end; ++k) {
            m[k] = c.b1 * m[k] + c.omb1 * g[k];
            v[k] = c.b2 * v[k] + c.omb2 * (g[k] * g[k]);
          }
        });
  } else {
    // The local gradients, 1-bit averaged; a non-finite one stops every rank in the call.
    send_.resize(static_cast<size_t>(numel_));
    for_each_flat_piece(
        groups_, [&](const FlatGroup&, const Param& p, size_t o, int64_t begin, int64_t end) {
          std::copy(p.grad.as<float>() + begin, p.grad.as<float>() + end, send_.data() + o + begin);
        });
    const auto t0 = Clock::now();
    const auto report = onebit_->all_reduce(TensorView::of(send_.data(), numel_));
    last_comm_ = train_detail::one_bit_comm_stats(
        report, numel_, comm_.size(), std::chrono::duration<double>(Clock::now() - t0).count());
    for_each_flat_piece(
        groups_, [&](const FlatGroup& grp, const Param&, size_t o, int64_t begin, int64_t end) {
          const Consts c(grp);
          const float* g = send_.data() + o;
          const float* v = exp_avg_sq_.data() + o;
          float* m = exp_avg_.data() + o;
          // Momentum mask (as 1-bit Adam's): where v is still exactly 0 no averaged gradient
          // was ever seen; one bit cannot say 0, and m / eps would throw the coordinate away.
          for (int64_t k = begin; k < end; ++k) {
            m[k] = v[k] > 0.0f ? c.b1 * m[k] + c.omb1 * g[k] : 0.0f;
          }
        });
  }
  for_each_flat_piece(
      groups_, [&](const FlatGroup& grp, const Param& param, size_t o, int64_t begin, int64_t end) {
        const Consts c(grp);
        float* p = param.value.as<float>();
        const float* m = exp_avg_.data() + o;
        const float* v = exp_avg_sq_.data() + o;
        for (int64_t k = begin; k < end; ++k) {
          const float den = std::sqrt(v[k]) + c.eps;
          p[k] = p[k] + c.neg_lr * (m[k] / den + c.wd * p[k]);
        }
      });
  if (variance_step && ++var_counter_ == var_update_scaler_) {
    var_counter_ = 0;
    var_interval_ *= 2;
  }
  if (t == var_freeze_step_) {
    // From here on the errors accumulate updates, not gradients; local steps start from here.
    onebit_->reset_errors();
    for (const auto& grp : groups_) {
      for (size_t i = 0; i < grp.params.size(); ++i) {
        std::copy_n(grp.params[i].value.as<float>(), grp.params[i].value.numel,
                    sync_params_.data() + grp.offsets[i]);
      }
    }
  }
}

void ZeroOneAdam::local_phase_step(int64_t t) {
  using train_detail::for_each_flat_piece;
  const bool sync = t % local_step_interval_ == 0;
  last_comm_ = CommStats{};
  if (!sync) {
    // No collective runs on this step: only this rank can know (see step()).
    check_finite(t, "local step");
    for (auto& grp : groups_) grp.lrs += grp.lr;
    for_each_flat_piece(groups_, [&](const FlatGroup& grp, const Param& param, size_t o,
                                     int64_t begin, int64_t end) {
      const Consts c(grp);
      float* p = param.value.as<float>();
      const float* g = param.grad.as<float>();
      float* m = exp_avg_.data() + o;
      const float* v = exp_avg_sq_.data() + o;
      for (int64_t k = begin; k < end; ++k) {
        m[k] = c.b1 * m[k] + c.omb1 * g[k];
        const float den = std::sqrt(v[k]) + c.eps;
        p[k] = p[k] + c.neg_lr * (m[k] / den + c.wd * p[k]);
      }
    });
  } else {
    // The local step into the send buffer only (acc = p_new - p_sync, scaled by the
    // denominator), so a failed all-reduce leaves every rank unchanged; then
    // p = p_sync + a / den on every rank.
    send_.resize(static_cast<size_t>(numel_));
    for_each_flat_piece(groups_, [&](const FlatGroup& grp, const Param& param, size_t o,
                                     int64_t begin, int64_t end) {
      const Consts c(grp);
      const float* p = param.value.as<float>();
      const float* g = param.grad.as<float>();
      for (int64_t k = begin; k < end; ++k) {
        const float m = c.b1 * exp_avg_[o + k] + c.omb1 * g[k];
        const float den = std::sqrt(exp_avg_sq_[o + k]) + c.eps;
        const float p_new = p[k] + c.neg_lr * (m / den + c.wd * p[k]);
        send_[o + k] = (p_new - sync_params_[o + k]) * den;
      }
    });
    const auto t0 = Clock::now();
    const auto report = onebit_->all_reduce(TensorView::of(send_.data(), numel_));
    last_comm_ = train_detail::one_bit_comm_stats(
        report, numel_, comm_.size(), std::chrono::duration<double>(Clock::now() - t0).count());
    for (auto& grp : groups_) grp.lrs += grp.lr;
    for_each_flat_piece(groups_, [&](const FlatGroup& grp, const Param& param, size_t o,
                                     int64_t begin, int64_t end) {
      const Consts c(grp);
      const auto lrs = static_cast<float>(grp.lrs);
      float* p = param.value.as<float>();
      for (int64_t k = begin; k < end; ++k) {
        // The mask: a coordinate with v = 0 never had a gradient and did not move locally, but
        // its all-reduced update is +-scale; keep it at p_sync.
        const float a = exp_avg_sq_[o + k] > 0.0f ? send_[o + k] : 0.0f;
        const float den = std::sqrt(exp_avg_sq_[o + k]) + c.eps;
        p[k] = sync_params_[o + k] + a / den;
        sync_params_[o + k] = p[k];
        exp_avg_[o + k] = grp.lrs > 0 ? -(a / lrs) : 0.0f;
      }
    });
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
  return (exp_avg_.size() + exp_avg_sq_.size() + sync_params_.size()) * sizeof(float) +
         onebit_->state_bytes();
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
  train_detail::save_flat(exp_avg_, "exp_avg", &sd);
  train_detail::save_flat(exp_avg_sq_, "exp_avg_sq", &sd);
  train_detail::save_flat(sync_params_, "sync_params", &sd);
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
  exp_avg_.swap(m);
  exp_avg_sq_.swap(v);
  sync_params_.swap(ps);
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

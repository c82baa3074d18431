#include "terse/train/one_bit_lamb.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "../optim/option_values.h"
#include "one_bit_optimizer_util.h"
#include "terse/core/check.h"

namespace terse {

using train_detail::FlatGroup;
using train_detail::param_label;

namespace {

const char* const kName = "onebit_lamb";
const std::vector<train_detail::OptionDefault> kOptions = {
    {"lr", "0.001"},       {"betas", "0.9/0.999"},      {"eps", "1e-08"},
    {"weight_decay", "0"}, {"freeze_step", ""},         {"max_coeff", "10"},
    {"min_coeff", "0.01"}, {"coeff_beta", "0.9"},       {"factor_max", "4"},
    {"factor_min", "0.5"}, {"factor_threshold", "0.1"}, {"defer_worker_error", "true"}};

using Clock = std::chrono::steady_clock;

double double_option(const OptionMap& options, const std::string& key) {
  return optim_detail::parse_double(std::string(kName) + " option '" + key + "'",
                                    train_detail::option_value(kOptions, options, key));
}

struct Consts {
  float b1, omb1, b2, omb2, wd, eps;
  explicit Consts(const FlatGroup& g)
      : b1(static_cast<float>(g.beta1)),
        omb1(static_cast<float>(1.0 - g.beta1)),
        b2(static_cast<float>(g.beta2)),
        omb2(static_cast<float>(1.0 - g.beta2)),
        wd(static_cast<float>(g.weight_decay)),
        eps(static_cast<float>(g.eps)) {}
};

}  // namespace

OneBitLamb::OneBitLamb(Communicator& comm, const OptionMap& options, std::vector<ParamGroup> groups)
    : comm_(comm) {
  train_detail::check_known_options(kName, kOptions, options, kName);
  freeze_step_ = train_detail::int_option(
      kName, kOptions, options, "freeze_step", 1, true,
      "the number of dense LAMB warm-up steps before the 1-bit compression phase; the "
      "tutorial uses 1000 for BERT, e.g. onebit_lamb:freeze_step=1000");
  max_coeff_ = double_option(options, "max_coeff");
  min_coeff_ = double_option(options, "min_coeff");
  coeff_beta_ = double_option(options, "coeff_beta");
  factor_max_ = double_option(options, "factor_max");
  factor_min_ = double_option(options, "factor_min");
  factor_threshold_ = double_option(options, "factor_threshold");
  TERSE_CHECK(std::isfinite(min_coeff_) && min_coeff_ > 0, InvalidArgument, kName,
              ": option 'min_coeff' must be a finite number > 0, got ", min_coeff_,
              "; 0.01 is usual");
  TERSE_CHECK(std::isfinite(max_coeff_) && max_coeff_ >= min_coeff_, InvalidArgument, kName,
              ": option 'max_coeff' must be a finite number >= min_coeff (", min_coeff_, "), got ",
              max_coeff_, "; 10 is usual (the BERT tutorial uses 0.3)");
  TERSE_CHECK(coeff_beta_ >= 0 && coeff_beta_ < 1, InvalidArgument, kName,
              ": option 'coeff_beta' must be in [0, 1), got ", coeff_beta_, "; 0.9 is usual");
  TERSE_CHECK(std::isfinite(factor_min_) && factor_min_ > 0, InvalidArgument, kName,
              ": option 'factor_min' must be a finite number > 0, got ", factor_min_,
              "; 0.5 is usual");
  TERSE_CHECK(std::isfinite(factor_max_) && factor_max_ >= factor_min_, InvalidArgument, kName,
              ": option 'factor_max' must be a finite number >= factor_min (", factor_min_,
              "), got ", factor_max_, "; 4 is usual");
  TERSE_CHECK(factor_threshold_ >= 0 && factor_threshold_ < 1, InvalidArgument, kName,
              ": option 'factor_threshold' must be in [0, 1), got ", factor_threshold_,
              "; 0.1 is usual");
  Device device;
  groups_ =
      train_detail::make_flat_groups(kName, kOptions, options, std::move(groups), &numel_, &device);
  train_detail::require_cpu(kName, device);
  size_t num_tensors = 0;
  for (const auto& g : groups_) num_tensors += g.params.size();
  tensors_.assign(num_tensors, TensorState{});
  last_coeffs_.assign(num_tensors, 1.0);
  exp_avg_.assign(static_cast<size_t>(numel_), 0.0f);
  exp_avg_sq_.assign(static_cast<size_t>(numel_), 0.0f);
  exp_avg_sq_fresh_.assign(static_cast<size_t>(numel_), 0.0f);
  // The all-reduce's element-wise passes use the same threads as the update passes (no bit
  // depends on the count).
  onebit_ = train_detail::make_one_bit_all_reduce(kName, kOptions, options, comm_, numel_);
}

OneBitLamb::~OneBitLamb() = default;

size_t OneBitLamb::num_groups() const { return groups_.size(); }

void OneBitLamb::step() {
  const int64_t t = step_count_ + 1;
  if (wants_averaged_gradients()) {
    warmup_step(t);
  } else {
    compression_step(t);
  }
  step_count_ = t;
}

void OneBitLamb::warmup_step(int64_t t) {
  // The averaged gradient is the same on every rank, so every rank stops here alike.
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
  size_t j = 0;
  for (auto& grp : groups_) {
    const Consts c(grp);
    for (size_t i = 0; i < grp.params.size(); ++i, ++j) {
      const auto o = grp.offsets[i];
      const int64_t n = grp.params[i].value.numel;
      float* p = grp.params[i].value.as<float>();
      const float* g = grp.params[i].grad.as<float>();
      float* m = exp_avg_.data() + o;
      float* v = exp_avg_sq_.data() + o;
      double weight_sq = 0, update_sq = 0;
      for (int64_t k = 0; k < n; ++k) {
        m[k] = c.b1 * m[k] + c.omb1 * g[k];
        v[k] = c.b2 * v[k] + c.omb2 * (g[k] * g[k]);
        const float u = m[k] / (std::sqrt(v[k]) + c.eps) + c.wd * p[k];
        weight_sq += static_cast<double>(p[k]) * p[k];
        update_sq += static_cast<double>(u) * u;
      }
      if (t == freeze_step_) std::copy_n(v, n, exp_avg_sq_fresh_.data() + o);
      const double weight_norm = std::sqrt(weight_sq), update_norm = std::sqrt(update_sq);
      double coeff = 1.0;
      if (weight_norm != 0 && update_norm != 0) {
        coeff = weight_norm / update_norm;
        if (coeff > max_coeff_) coeff = max_coeff_;
        if (coeff < min_coeff_) coeff = min_coeff_;
      }
      TensorState& ts = tensors_[j];
      if (coeff != 1.0) ts.coeff_freeze = coeff_beta_ * ts.coeff_freeze + (1 - coeff_beta_) * coeff;
      last_coeffs_[j] = coeff;
      const auto step_size = static_cast<float>(-grp.lr * coeff);
      for (int64_t k = 0; k < n; ++k) {
        const float u = m[k] / (std::sqrt(v[k]) + c.eps) + c.wd * p[k];
        p[k] = p[k] + step_size * u;
      }
    }
  }
  last_comm_ = CommStats{};
}

void OneBitLamb::compression_step(int64_t /*t*/) {
  // Scaling coefficients from the momenta at the end of the warm-up (first compression step).
  std::vector<double> scaling(tensors_.size());
  for (size_t j = 0; j < tensors_.size(); ++j) scaling[j] = tensors_[j].scaling;
  if (!scaling_ready_) {
    std::vector<double> rms(tensors_.size(), 0.0);
    double sum = 0;
    size_t count = 0;
    size_t j = 0;
    for (const auto& grp : groups_) {
      for (size_t i = 0; i < grp.params.size(); ++i, ++j) {
        const int64_t n = grp.params[i].value.numel;
        if (n == 0) continue;
        const float* m = exp_avg_.data() + grp.offsets[i];
        double sq = 0;
        for (int64_t k = 0; k < n; ++k) sq += static_cast<double>(m[k]) * m[k];
        rms[j] = std::sqrt(sq) / std::sqrt(static_cast<double>(n));
        sum += rms[j];
        ++count;
      }
    }
    const double united = sum / static_cast<double>(count);
    for (size_t k = 0; k < rms.size(); ++k) scaling[k] = rms[k] > 0 ? united / rms[k] : 1.0;
  }
  // The scaled new momenta go to a send buffer first: a non-finite one on any rank throws on
  // every rank with nothing changed.
  std::vector<float> send(static_cast<size_t>(numel_));
  size_t j = 0;
  for (const auto& grp : groups_) {
    const Consts c(grp);
    for (size_t i = 0; i < grp.params.size(); ++i, ++j) {
      const auto o = grp.offsets[i];
      const float* g = grp.params[i].grad.as<float>();
      const auto s = static_cast<float>(scaling[j]);
      for (int64_t k = 0; k < grp.params[i].value.numel; ++k) {
        send[o + k] = (c.b1 * exp_avg_[o + k] + c.omb1 * g[k]) * s;
      }
    }
  }
  const auto t0 = Clock::now();
  const auto report = onebit_->all_reduce(TensorView::of(send.data(), numel_));
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  j = 0;
  for (auto& grp : groups_) {
    const Consts c(grp);
    for (size_t i = 0; i < grp.params.size(); ++i, ++j) {
      const auto o = grp.offsets[i];
      const int64_t n = grp.params[i].value.numel;
      float* p = grp.params[i].value.as<float>();
      float* m = exp_avg_.data() + o;
      const float* v = exp_avg_sq_.data() + o;
      float* vf = exp_avg_sq_fresh_.data() + o;
      const auto s = static_cast<float>(scaling[j]);
      float max_ratio = 0;
      double prelim_sq = 0, update_sq = 0;
      for (int64_t k = 0; k < n; ++k) {
        const float m_prev = m[k];
        // Momentum mask (as 1-bit Adam's): v = 0 means no gradient during the warm-up; one
        // bit cannot say 0, and m / eps would throw the coordinate away.
        const float m_new = v[k] > 0.0f ? send[o + k] / s : 0.0f;
        const float g_rec = (m_new - m_prev * c.b1) / c.omb1;
        vf[k] = c.b2 * vf[k] + c.omb2 * (g_rec * g_rec);
        m[k] = m_new;
        const float den = std::sqrt(v[k]) + c.eps;
        const float ratio = den / (std::sqrt(vf[k]) + c.eps);
        if (ratio > max_ratio) max_ratio = ratio;
        const float prelim = m_new / den;
        const float u = prelim + c.wd * p[k];
        prelim_sq += static_cast<double>(prelim) * prelim;
        update_sq += static_cast<double>(u) * u;
      }
      TensorState& ts = tensors_[j];
      double factor = max_ratio;
      if (grp.weight_decay > 0) {
        const double r =
            update_sq > 0 ? std::min(1.0, std::sqrt(prelim_sq) / std::sqrt(update_sq)) : 1.0;
        factor = factor * r + (1.0 - r);
      }
      if (factor > factor_max_) factor = factor_max_;
      if (factor < factor_min_) factor = factor_min_;
      if (factor > ts.last_factor * (1.0 + factor_threshold_)) {
        factor = ts.last_factor * (1.0 + factor_threshold_);
      }
      if (factor < ts.last_factor * (1.0 - factor_threshold_)) {
        factor = ts.last_factor * (1.0 - factor_threshold_);
      }
      ts.last_factor = factor;
      ts.scaling = scaling[j];
      const double coeff = ts.coeff_freeze * factor;
      last_coeffs_[j] = coeff;
      const auto step_size = static_cast<float>(-grp.lr * coeff);
      for (int64_t k = 0; k < n; ++k) {
        const float u = m[k] / (std::sqrt(v[k]) + c.eps) + c.wd * p[k];
        p[k] = p[k] + step_size * u;
      }
    }
  }
  scaling_ready_ = true;
  last_comm_ = train_detail::one_bit_comm_stats(report, numel_, comm_.size(), seconds);
}

const FlatGroup& OneBitLamb::group_at(size_t group, const char* caller) const {
  TERSE_CHECK(group < groups_.size(), InvalidArgument, kName, ".", caller, ": group ", group,
              " does not exist; this optimizer has ", groups_.size(), " group(s)");
  return groups_[group];
}

double OneBitLamb::lr(size_t group) const { return group_at(group, "lr").lr; }

double OneBitLamb::base_lr(size_t group) const { return group_at(group, "base_lr").base_lr; }

void OneBitLamb::set_lr(double lr, size_t group) {
  group_at(group, "set_lr");
  TERSE_CHECK(std::isfinite(lr) && lr >= 0, InvalidArgument, kName,
              ".set_lr: lr must be a finite number >= 0, got ", lr);
  groups_[group].lr = lr;
}

void OneBitLamb::scale_lr(double factor) {
  TERSE_CHECK(std::isfinite(factor) && factor >= 0, InvalidArgument, kName,
              ".scale_lr: factor must be a finite number >= 0, got ", factor);
  for (auto& grp : groups_) grp.lr = grp.base_lr * factor;
}

OptionMap OneBitLamb::options(size_t group) const {
  OptionMap out;
  train_detail::add_group_options(group_at(group, "options"), &out);
  out["freeze_step"] = std::to_string(freeze_step_);
  out["max_coeff"] = optim_detail::format_double(max_coeff_);
  out["min_coeff"] = optim_detail::format_double(min_coeff_);
  out["coeff_beta"] = optim_detail::format_double(coeff_beta_);
  out["factor_max"] = optim_detail::format_double(factor_max_);
  out["factor_min"] = optim_detail::format_double(factor_min_);
  out["factor_threshold"] = optim_detail::format_double(factor_threshold_);
  out["defer_worker_error"] = onebit_->defers_worker_error() ? "true" : "false";
  return out;
}

size_t OneBitLamb::state_bytes() const {
  return (exp_avg_.size() + exp_avg_sq_.size() + exp_avg_sq_fresh_.size()) * sizeof(float) +
         onebit_->state_bytes() + tensors_.size() * sizeof(TensorState);
}

StateDict OneBitLamb::state_dict() const {
  StateDict sd = onebit_->state_dict("onebit.");
  train_detail::save_groups(kName, groups_, &sd);
  sd.ints["step_count"] = step_count_;
  sd.ints["freeze_step"] = freeze_step_;
  sd.ints["world_size"] = comm_.size();
  sd.ints["scaling_ready"] = scaling_ready_ ? 1 : 0;
  for (size_t j = 0; j < tensors_.size(); ++j) {
    const std::string kp = "param." + std::to_string(j) + ".";
    sd.floats[kp + "lamb_coeff_freeze"] = tensors_[j].coeff_freeze;
    sd.floats[kp + "last_factor"] = tensors_[j].last_factor;
    sd.floats[kp + "scaling_coeff"] = tensors_[j].scaling;
  }
  train_detail::save_flat(exp_avg_, "exp_avg", &sd);
  train_detail::save_flat(exp_avg_sq_, "exp_avg_sq", &sd);
  train_detail::save_flat(exp_avg_sq_fresh_, "exp_avg_sq_fresh", &sd);
  return sd;
}

void OneBitLamb::load_state_dict(const StateDict& sd) {
  const std::vector<double> lrs = train_detail::load_groups(kName, groups_, sd);
  const int64_t steps = sd.int_value("step_count");
  TERSE_CHECK(steps >= 0, CorruptData, "load_state_dict: step_count is ", steps,
              "; the state dict is damaged");
  const int64_t freeze = sd.int_value("freeze_step");
  TERSE_CHECK(freeze == freeze_step_, InvalidArgument, "load_state_dict: the state dict was ",
              "saved with freeze_step=", freeze, " but this ", kName,
              " has freeze_step=", freeze_step_, "; resume with the freeze_step it was saved with");
  const int64_t world = sd.int_value("world_size");
  TERSE_CHECK(world == comm_.size(), InvalidArgument, "load_state_dict: the state dict was saved ",
              "on ", world, " rank(s) but this run has ", comm_.size(),
              " (the 1-bit errors are per rank); resume on the same number of ranks");
  const int64_t ready = sd.int_value("scaling_ready");
  TERSE_CHECK(ready == (steps > freeze ? 1 : 0), CorruptData, "load_state_dict: scaling_ready ",
              "is ", ready, " at step ", steps, " with freeze_step ", freeze,
              "; the state dict is damaged");
  std::vector<TensorState> ts(tensors_.size());
  for (size_t j = 0; j < ts.size(); ++j) {
    const std::string kp = "param." + std::to_string(j) + ".";
    ts[j].coeff_freeze = sd.float_value(kp + "lamb_coeff_freeze");
    ts[j].last_factor = sd.float_value(kp + "last_factor");
    ts[j].scaling = sd.float_value(kp + "scaling_coeff");
    TERSE_CHECK(std::isfinite(ts[j].coeff_freeze) && ts[j].coeff_freeze >= 0 &&
                    std::isfinite(ts[j].last_factor) && ts[j].last_factor > 0 &&
                    std::isfinite(ts[j].scaling) && ts[j].scaling > 0,
                CorruptData, "load_state_dict: tensor ", j, " has lamb_coeff_freeze ",
                ts[j].coeff_freeze, ", last_factor ", ts[j].last_factor, ", scaling_coeff ",
                ts[j].scaling, " (must be finite, >= 0, > 0, > 0); the state dict is damaged");
  }
  std::vector<float> m = train_detail::load_flat(sd, "exp_avg", numel_);
  std::vector<float> v = train_detail::load_flat(sd, "exp_avg_sq", numel_);
  std::vector<float> vf = train_detail::load_flat(sd, "exp_avg_sq_fresh", numel_);
  onebit_->load_state_dict(sd, "onebit.");  // last: leaves the errors unchanged on error
  exp_avg_.swap(m);
  exp_avg_sq_.swap(v);
  exp_avg_sq_fresh_.swap(vf);
  tensors_ = std::move(ts);
  for (size_t g = 0; g < groups_.size(); ++g) groups_[g].lr = lrs[g];
  step_count_ = steps;
  scaling_ready_ = ready == 1;
  last_comm_ = CommStats{};
}

}  // namespace terse

#include "terse/train/one_bit_lamb.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <utility>

#include "../optim/option_values.h"
#include "one_bit_optimizer_util.h"
#include "terse/core/check.h"
#include "terse/kernels/cuda_multi_tensor.h"
#include "terse/kernels/one_bit_lamb_rules.h"

namespace terse {

using train_detail::FlatBuffer;
using train_detail::FlatGroup;

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

OneBitLambConsts consts_of(const FlatGroup& g) {
  OneBitLambConsts c;
  c.b1 = static_cast<float>(g.beta1);
  c.omb1 = static_cast<float>(1.0 - g.beta1);
  c.b2 = static_cast<float>(g.beta2);
  c.omb2 = static_cast<float>(1.0 - g.beta2);
  c.wd = static_cast<float>(g.weight_decay);
  c.eps = static_cast<float>(g.eps);
  return c;
}

TensorView grad_of(const Param& p, size_t /*offset*/) { return p.grad; }

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
  groups_ = train_detail::make_flat_groups(kName, kOptions, options, std::move(groups), &numel_,
                                           &device_);
  size_t num_tensors = 0;
  for (const auto& g : groups_) {
    first_tensor_.push_back(num_tensors);
    num_tensors += g.params.size();
  }
  tensors_.assign(num_tensors, TensorState{});
  last_coeffs_.assign(num_tensors, 1.0);
  exp_avg_ = std::make_unique<FlatBuffer>(device_, numel_);
  exp_avg_sq_ = std::make_unique<FlatBuffer>(device_, numel_);
  exp_avg_sq_fresh_ = std::make_unique<FlatBuffer>(device_, numel_);
  send_ = std::make_unique<FlatBuffer>();
  scratch_ = std::make_unique<FlatBuffer>();
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
  if (device_.is_cuda()) cuda_synchronize();  // a failure of the step belongs to this step
  step_count_ = t;
}

size_t OneBitLamb::tensor_index(const FlatGroup& g, size_t i) const {
  return first_tensor_[static_cast<size_t>(&g - groups_.data())] + i;
}

void OneBitLamb::ensure(std::unique_ptr<FlatBuffer>& buffer) const {
  if (buffer->numel() != numel_) *buffer = FlatBuffer(device_, numel_);
}

void OneBitLamb::apply_update(const std::vector<double>& coeffs) {
  std::vector<float> step_sizes(coeffs.size());
  for (const FlatGroup& grp : groups_) {
    for (size_t i = 0; i < grp.params.size(); ++i) {
      const size_t j = tensor_index(grp, i);
      step_sizes[j] = static_cast<float>(-grp.lr * coeffs[j]);
    }
  }
  train_detail::apply_flat(
      groups_, device_,
      [&](const FlatGroup& g, size_t i) {
        return OneBitLambUpdateRule{consts_of(g), step_sizes[tensor_index(g, i)]};
      },
      grad_of, std::array<float*, 2>{exp_avg_->data(), exp_avg_sq_->data()});
}

void OneBitLamb::warmup_step(int64_t t) {
  // The averaged gradient is the same on every rank, so every rank stops here alike.
  train_detail::check_finite_grads(kName, groups_, t, "warm-up", comm_.rank());
  ensure(scratch_);
  // m, v and u (into scratch_, for its norm); p unchanged.
  train_detail::apply_flat(
      groups_, device_, [](const FlatGroup& g) { return OneBitLambWarmupRule{consts_of(g)}; },
      grad_of, std::array<float*, 3>{exp_avg_->data(), exp_avg_sq_->data(), scratch_->data()});
  if (t == freeze_step_) exp_avg_sq_fresh_->copy_from(*exp_avg_sq_);
  const std::vector<double> weight_sq =
      train_detail::tensor_sums_of_squares(groups_, device_, nullptr);
  const std::vector<double> update_sq =
      train_detail::tensor_sums_of_squares(groups_, device_, scratch_.get());
  for (size_t j = 0; j < tensors_.size(); ++j) {
    const double weight_norm = std::sqrt(weight_sq[j]), update_norm = std::sqrt(update_sq[j]);
    double coeff = 1.0;
    if (weight_norm != 0 && update_norm != 0) {
      coeff = weight_norm / update_norm;
      if (coeff > max_coeff_) coeff = max_coeff_;
      if (coeff < min_coeff_) coeff = min_coeff_;
    }
    TensorState& ts = tensors_[j];
    if (coeff != 1.0) ts.coeff_freeze = coeff_beta_ * ts.coeff_freeze + (1 - coeff_beta_) * coeff;
    last_coeffs_[j] = coeff;
  }
  apply_update(last_coeffs_);
  last_comm_ = CommStats{};
}

void OneBitLamb::compression_step(int64_t /*t*/) {
  // Scaling coefficients from the momenta at the end of the warm-up (first compression step).
  std::vector<double> scaling(tensors_.size());
  for (size_t j = 0; j < tensors_.size(); ++j) scaling[j] = tensors_[j].scaling;
  if (!scaling_ready_) {
    const std::vector<double> sq =
        train_detail::tensor_sums_of_squares(groups_, device_, exp_avg_.get());
    std::vector<double> rms(tensors_.size(), 0.0);
    double sum = 0;
    size_t count = 0;
    for (const auto& grp : groups_) {
      for (size_t i = 0; i < grp.params.size(); ++i) {
        const int64_t n = grp.params[i].value.numel;
        if (n == 0) continue;
        const size_t j = tensor_index(grp, i);
        rms[j] = std::sqrt(sq[j]) / std::sqrt(static_cast<double>(n));
        sum += rms[j];
        ++count;
      }
    }
    const double united = sum / static_cast<double>(count);
    for (size_t k = 0; k < rms.size(); ++k) scaling[k] = rms[k] > 0 ? united / rms[k] : 1.0;
  }
  const auto scaling_of = [&](const FlatGroup& g, size_t i) {
    return static_cast<float>(scaling[tensor_index(g, i)]);
  };
  // The scaled new momenta go to the send buffer first: a non-finite one on any rank throws on
  // every rank with nothing changed.
  ensure(send_);
  train_detail::apply_flat(
      groups_, device_,
      [&](const FlatGroup& g, size_t i) {
        return OneBitLambMomentumRule{static_cast<float>(g.beta1),
                                      static_cast<float>(1.0 - g.beta1), scaling_of(g, i)};
      },
      grad_of, std::array<float*, 2>{exp_avg_->data(), send_->data()});
  const auto t0 = Clock::now();
  const auto report = onebit_->all_reduce(send_->view());
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  // m, v_fresh, and each element's ratio (into send_).
  train_detail::apply_flat(
      groups_, device_,
      [&](const FlatGroup& g, size_t i) {
        return OneBitLambFreshRule{consts_of(g), scaling_of(g, i)};
      },
      grad_of,
      std::array<float*, 4>{exp_avg_->data(), exp_avg_sq_->data(), exp_avg_sq_fresh_->data(),
                            send_->data()});
  const std::vector<float> max_ratio = train_detail::tensor_positive_max(groups_, *send_);
  // With weight decay, the norms of m / (sqrt(v) + eps) (into send_) and u (into scratch_).
  std::vector<double> prelim_sq, update_sq;
  bool decay = false;
  for (const auto& grp : groups_) decay = decay || grp.weight_decay > 0;
  if (decay) {
    ensure(scratch_);
    train_detail::apply_flat(
        groups_, device_, [](const FlatGroup& g) { return OneBitLambPrelimRule{consts_of(g)}; },
        grad_of,
        std::array<float*, 4>{exp_avg_->data(), exp_avg_sq_->data(), send_->data(),
                              scratch_->data()});
    prelim_sq = train_detail::tensor_sums_of_squares(groups_, device_, send_.get());
    update_sq = train_detail::tensor_sums_of_squares(groups_, device_, scratch_.get());
  }
  for (const auto& grp : groups_) {
    for (size_t i = 0; i < grp.params.size(); ++i) {
      const size_t j = tensor_index(grp, i);
      TensorState& ts = tensors_[j];
      double factor = max_ratio[j];
      if (grp.weight_decay > 0) {
        const double r = update_sq[j] > 0
                             ? std::min(1.0, std::sqrt(prelim_sq[j]) / std::sqrt(update_sq[j]))
                             : 1.0;
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
      last_coeffs_[j] = ts.coeff_freeze * factor;
    }
  }
  apply_update(last_coeffs_);
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
  return 3 * static_cast<size_t>(numel_) * sizeof(float) + onebit_->state_bytes() +
         tensors_.size() * sizeof(TensorState);
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
  train_detail::save_flat(*exp_avg_, "exp_avg", &sd);
  train_detail::save_flat(*exp_avg_sq_, "exp_avg_sq", &sd);
  train_detail::save_flat(*exp_avg_sq_fresh_, "exp_avg_sq_fresh", &sd);
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
  exp_avg_->assign(m);
  exp_avg_sq_->assign(v);
  exp_avg_sq_fresh_->assign(vf);
  tensors_ = std::move(ts);
  for (size_t g = 0; g < groups_.size(); ++g) groups_[g].lr = lrs[g];
  step_count_ = steps;
  scaling_ready_ = ready == 1;
  last_comm_ = CommStats{};
}

}  // namespace terse

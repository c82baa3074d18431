// lookahead: Zhang et al., "Lookahead Optimizer: k steps forward, 1 step back" (NeurIPS 2019),
// as in kozistr/pytorch_optimizer `Lookahead` (spec optimizers.md §16), around any registered
// optimizer. Every k inner steps, per element with slow weights s and fast weights p:
//   s += alpha * (p - s);  p = s
// computed as pytorch_optimizer does, p.lerp_(s, 1 - alpha), then s = p.
//
// Differences from pytorch_optimizer: the slow copy is taken at the first step() (before the
// inner update) rather than at construction, so weights set after the optimizer is built (the
// trainer's rank-0 broadcast, a resumed model) are the ones the slow weights start from; the
// same run otherwise. The slow copy is f32 for every parameter dtype and holds exactly the
// (rounded) fast weights after each sync, as the reference's copy in the parameter's dtype does.
// pullback_momentum is only 'none' (the inner state is the inner optimizer's own business).
//
// The slow weights live where the parameters are: in host memory for CPU tensors, in the GPU's
// memory for CUDA ones (any inner optimizer that steps them there), where the copy and the sync
// are GPU passes on the legacy default stream after the inner step, with the host's formula
// (terse/kernels/lookahead_sync_rule.h) and so the host's bits.

#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "optimizer_registry.h"
#include "option_values.h"
#include "state_buffer.h"
#include "terse/core/check.h"
#include "terse/kernels/param_state_apply.h"

namespace terse::optim_detail {
namespace {

constexpr const char* kName = "lookahead";
constexpr const char* kOwnOptions = "inner, k, alpha, pullback_momentum";

class Lookahead final : public Optimizer {
 public:
  Lookahead(std::unique_ptr<Optimizer> inner, std::vector<Param> params, int64_t k, double alpha)
      : inner_(std::move(inner)), params_(std::move(params)), k_(k), alpha_(alpha) {
    // The inner optimizer has checked that they share one device; the slow weights go there.
    if (!params_.empty()) device_ = params_[0].value.device;
    for (const Param& p : params_) {
      TERSE_CHECK(p.value.device == device_, InvalidArgument, kName, ": parameter '", p.name,
                  "' is on ", p.value.device.str(), " but the first one on ", device_.str(),
                  "; pass the parameters of one device");
    }
  }

  const char* name() const override { return kName; }

  void step() override {
    if (slow_.empty()) take_slow_copy();
    inner_->step();
    ++steps_;
    if (steps_ % k_ == 0) sync();
  }

  int64_t step_count() const override { return inner_->step_count(); }
  size_t num_groups() const override { return inner_->num_groups(); }
  double lr(size_t group) const override { return inner_->lr(group); }
  void set_lr(double lr, size_t group) override { inner_->set_lr(lr, group); }
  void scale_lr(double factor) override { inner_->scale_lr(factor); }
  double base_lr(size_t group) const override { return inner_->base_lr(group); }

  OptionMap options(size_t group) const override {
    OptionMap out = inner_->options(group);
    out["inner"] = inner_->name();
    out["k"] = std::to_string(k_);
    out["alpha"] = format_double(alpha_);
    out["pullback_momentum"] = "none";
    return out;
  }

  // Layout: strings "optimizer" = "lookahead"; ints "lookahead.step" (inner steps since the
  // slow copy was taken; k divides it at a sync), "lookahead.has_slow"; tensors "slow.K" (f32,
  // parameter K over all groups); every key of the inner state dict prefixed with "inner.".
  StateDict state_dict() const override {
    StateDict sd;
    const StateDict in = inner_->state_dict();
    for (const auto& [key, v] : in.tensors) sd.tensors[kInner + key] = v;
    for (const auto& [key, v] : in.ints) sd.ints[kInner + key] = v;
    for (const auto& [key, v] : in.floats) sd.floats[kInner + key] = v;
    for (const auto& [key, v] : in.strings) sd.strings[kInner + key] = v;
    sd.strings["optimizer"] = kName;
    sd.ints["lookahead.step"] = steps_;
    sd.ints["lookahead.has_slow"] = slow_.empty() ? 0 : 1;
    for (size_t i = 0; i < slow_.size(); ++i) {
      std::vector<float> scratch;  // a CUDA slow copy's host copy
      sd.tensors["slow." + std::to_string(i)] =
          StateTensor::copy_of(slow_[i].host_view(scratch), params_[i].shape);
    }
    return sd;
  }

  void load_state_dict(const StateDict& sd) override {
    const std::string& saved = sd.string_value("optimizer");
    TERSE_CHECK(saved == kName, InvalidArgument, "load_state_dict: the state dict is from ",
                "optimizer '", saved, "' but this optimizer is lookahead (inner=", inner_->name(),
                "); build the same optimizer that saved it");
    const int64_t steps = sd.int_value("lookahead.step");
    TERSE_CHECK(steps >= 0, CorruptData, "load_state_dict: lookahead.step is ", steps,
                "; the state dict is damaged");
    const bool has_slow = sd.int_value("lookahead.has_slow") != 0;
    // Checked and copied first, and the inner optimizer loads atomically, so an error leaves
    // *this unchanged.
    std::vector<StateBuffer> fresh;
    size_t slow_tensors = 0;
    StateDict in;
    for (const auto& [key, v] : sd.tensors) {
      if (key.rfind(kInner, 0) == 0) in.tensors[key.substr(kInner.size())] = v;
      if (key.rfind("slow.", 0) == 0) ++slow_tensors;
    }
    for (const auto& [key, v] : sd.ints) {
      if (key.rfind(kInner, 0) == 0) in.ints[key.substr(kInner.size())] = v;
    }
    for (const auto& [key, v] : sd.floats) {
      if (key.rfind(kInner, 0) == 0) in.floats[key.substr(kInner.size())] = v;
    }
    for (const auto& [key, v] : sd.strings) {
      if (key.rfind(kInner, 0) == 0) in.strings[key.substr(kInner.size())] = v;
    }
    const size_t expected = has_slow ? params_.size() : 0;
    TERSE_CHECK(slow_tensors == expected, InvalidArgument, "load_state_dict: the state dict holds ",
                slow_tensors, " lookahead slow tensor(s) but this optimizer has ", expected,
                "; load into the same model");
    if (has_slow) {
      for (size_t i = 0; i < params_.size(); ++i) {
        const std::string key = "slow." + std::to_string(i);
        std::vector<float> buf(static_cast<size_t>(params_[i].value.numel));
        sd.tensor(key).copy_to(TensorView::of(buf.data(), params_[i].value.numel), key);
        fresh.emplace_back(device_, std::move(buf));
      }
    }
    inner_->load_state_dict(in);
    slow_ = std::move(fresh);
    steps_ = steps;
  }

  size_t state_bytes() const override {
    size_t bytes = inner_->state_bytes();
    for (const auto& s : slow_) bytes += s.size() * sizeof(float);
    return bytes;
  }

 private:
  inline static const std::string kInner = "inner.";

  void take_slow_copy() {
    std::vector<StateBuffer> fresh;
    for (const Param& p : params_) fresh.emplace_back(device_, static_cast<size_t>(p.value.numel));
    slow_ = std::move(fresh);
    apply(EmaRule::copy_param());
    steps_ = 0;
  }

  // One pass: p = lerp(p, s, 1 - alpha) stored in the parameter's dtype, s = that stored value.
  void sync() { apply(LookaheadSyncRule::make(alpha_)); }

  // One param-state pass over every parameter with its slow weights.
  template <typename Rule>
  void apply(const Rule& rule) {
    std::vector<ParamStateTask> tasks(params_.size());
    for (size_t i = 0; i < params_.size(); ++i) tasks[i] = {params_[i].value, slow_[i].data()};
    param_state_apply(rule, tasks);
  }

  std::unique_ptr<Optimizer> inner_;
  std::vector<Param> params_;  // every group's, in order (slow_[i] belongs to params_[i])
  Device device_ = Device::cpu();
  int64_t k_;
  double alpha_;
  std::vector<StateBuffer> slow_;  // on device_; empty until the first step
  int64_t steps_ = 0;
};

}  // namespace

// Options inner, k, alpha and pullback_momentum are lookahead's; the rest go to the inner
// optimizer, which rejects those it does not know.
std::unique_ptr<Optimizer> make_lookahead(const OptionMap& options,
                                          std::vector<ParamGroup> groups) {
  OptionMap rest = options;
  const auto take = [&](const char* key) -> std::string {
    const auto it = rest.find(key);
    if (it == rest.end()) return "";
    std::string v = trim(it->second);
    rest.erase(it);
    return v;
  };
  const std::string inner = take("inner");
  const std::string k_text = take("k");
  const std::string alpha_text = take("alpha");
  const std::string pullback = take("pullback_momentum");
  TERSE_CHECK(!inner.empty(), InvalidArgument, kName,
              ": needs the optimizer to wrap as inner=NAME; write e.g. "
              "lookahead:inner=adam,k=5,alpha=0.5,lr=1e-3");
  TERSE_CHECK(inner != kName, InvalidArgument, kName,
              ": inner=lookahead is not supported; wrap a plain optimizer such as sgd or adam");
  const int64_t k = k_text.empty() ? 5 : parse_int("lookahead option 'k'", k_text);
  TERSE_CHECK(k >= 1, InvalidArgument, kName, ": k must be an integer >= 1 (inner steps between ",
              "syncs), got ", k, "; 5 is the paper's default");
  const double alpha =
      alpha_text.empty() ? 0.5 : parse_double("lookahead option 'alpha'", alpha_text);
  TERSE_CHECK(std::isfinite(alpha) && alpha > 0 && alpha <= 1, InvalidArgument, kName,
              ": alpha must be in (0, 1], got ", alpha,
              "; 0.5 is the paper's default (alpha = 1 is the inner optimizer alone)");
  TERSE_CHECK(pullback.empty() || pullback == "none", InvalidArgument, kName,
              ": pullback_momentum '", pullback,
              "' is not supported; only 'none' (the inner optimizer's momentum is kept as is)");
  std::vector<Param> params;
  for (const ParamGroup& g : groups) params.insert(params.end(), g.params.begin(), g.params.end());
  const OptimizerEntry& entry = find_optimizer(inner);
  std::unique_ptr<Optimizer> built;
  try {
    built = entry.make(rest, std::move(groups));
  } catch (const InvalidArgument& e) {
    TERSE_THROW(InvalidArgument, "lookahead (inner=", inner, "): ", e.what(),
                "; lookahead's own options are ", kOwnOptions);
  }
  return std::make_unique<Lookahead>(std::move(built), std::move(params), k, alpha);
}

}  // namespace terse::optim_detail

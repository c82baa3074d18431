// spam: Huang et al. 2025 as in TianjinYellow/SPAM-Optimizer `galore_torch/SPAM.py` `AdamW`
// (Rule: terse/kernels/spam_rule.h; counters: spam_schedule.h).

#include <cmath>
#include <string>
#include <tuple>
#include <variant>

#include "fused_optimizer.h"
#include "option_values.h"
#include "spam_schedule.h"
#include "terse/core/check.h"
#include "terse/kernels/cpu_multi_tensor_impl.h"
#include "terse/kernels/spam_rule.h"

namespace terse {

template void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<SpamRule>>&);

namespace optim_detail {
namespace {

// A whole number >= `min` from a double option (the option table has no integer type).
int64_t whole(const GroupOptions& o, const char* name, double min, const char* advice) {
  const double x = o.number(name);
  TERSE_CHECK(std::isfinite(x) && x >= min && x == std::floor(x) && x < 9e15, InvalidArgument,
              o.who(), ": ", name, " must be a whole number >= ", min, ", got ", x, "; ", advice);
  return static_cast<int64_t>(x);
}

struct SpamDef {
  static constexpr const char* kName = "spam";
  struct Hyper {
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-6, weight_decay = 0, threshold = 5000;
    bool correct_bias = true;
    SpamSchedule schedule;
  };
  using Rule = std::variant<SpamRule>;

  // The class defaults of the official code (its README runs differ only in lr).
  static std::vector<OptionDef> options() {
    return {
        {"lr", OptionType::kDouble, "0.001"},          {"betas", OptionType::kPair, "0.9/0.999"},
        {"eps", OptionType::kDouble, "1e-06"},         {"weight_decay", OptionType::kDouble, "0"},
        {"correct_bias", OptionType::kBool, "true"},   {"warmup_steps", OptionType::kDouble, "150"},
        {"threshold", OptionType::kDouble, "5000"},    {"DeltaT", OptionType::kDouble, "500"},
        {"grad_accu_steps", OptionType::kDouble, "20"}};
  }

  static Hyper parse(const GroupOptions& o) {
    o.lr();
    Hyper h;
    h.weight_decay = o.weight_decay();
    std::tie(h.beta1, h.beta2) = o.betas();
    h.correct_bias = o.flag("correct_bias");
    h.threshold = o.number("threshold");
    const std::string& who = o.who();
    // The official check is eps >= 0, but eps = 0 makes m / sqrt(v) 0/0 wherever g was 0.
    h.eps = o.positive("eps", "1e-6 is the default");
    TERSE_CHECK(std::isfinite(h.threshold) && h.threshold >= 0, InvalidArgument, who,
                ": threshold must be a finite number >= 0 (0 turns clipping off), got ",
                h.threshold, "; 5000 is the default");
    SpamSchedule& s = h.schedule;
    s.warmup_steps = whole(o, "warmup_steps", 0, "150 is the default (0: no warm-up)");
    // The official code takes (step % DeltaT), so 0 fails there too.
    s.delta_t = whole(o, "DeltaT", 1, "500 is the default; a huge value never resets");
    s.grad_accu_steps = whole(o, "grad_accu_steps", 0, "20 is the default");
    s.clipping = h.threshold != 0;
    // Clipping on while v = 0 zeroes every gradient, so v stays 0: the official code then never
    // moves (0) or not before step DeltaT (1). Rejected rather than reproduced.
    TERSE_CHECK(!s.clipping || s.grad_accu_steps >= 2, InvalidArgument, who,
                ": grad_accu_steps must be >= 2 with threshold != 0, got ", s.grad_accu_steps,
                "; with 0 or 1 clipping starts while exp_avg_sq is 0 and zeroes every gradient ",
                "(20 is the default; threshold=0 turns clipping off)");
    return h;
  }

  static std::vector<std::string> state_names(const Hyper&) { return {"exp_avg", "exp_avg_sq"}; }

  static void describe(const Hyper& h, OptionMap& out) {
    const auto n = [](int64_t v) { return std::to_string(v); };
    out["weight_decay"] = format_double(h.weight_decay);
    out["betas"] = format_double(h.beta1) + "/" + format_double(h.beta2);
    out["eps"] = format_double(h.eps);
    out["correct_bias"] = h.correct_bias ? "true" : "false";
    out["warmup_steps"] = n(h.schedule.warmup_steps);
    // Whole thresholds as the official int ("5000", not format_double's "5e+03").
    out["threshold"] = h.threshold == std::floor(h.threshold) && h.threshold < 9e15
                           ? n(static_cast<int64_t>(h.threshold))
                           : format_double(h.threshold);
    out["DeltaT"] = n(h.schedule.delta_t);
    out["grad_accu_steps"] = n(h.schedule.grad_accu_steps);
  }

  // Every parameter steps every step, so the official per-parameter `step` and the global
  // `total_step` are both t - 1 before step t.
  static Rule rule(const Hyper& h, double lr, int64_t step) {
    const SpamSchedule& s = h.schedule;
    return SpamRule::for_step(lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.correct_bias,
                              h.threshold, s.warmup_scale(step), s.reset(step), s.clip(step), step);
  }
};

}  // namespace

std::unique_ptr<Optimizer> make_spam(const OptionMap& options, std::vector<ParamGroup> groups) {
  return std::make_unique<FusedOptimizer<SpamDef>>(options, std::move(groups));
}

}  // namespace optim_detail
}  // namespace terse

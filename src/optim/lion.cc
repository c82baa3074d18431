// lion: Chen et al. 2023 as in lucidrains/lion-pytorch `Lion` (Rule: terse/kernels/lion_rule.h).

#include <cmath>
#include <tuple>
#include <variant>

#include "fused_optimizer.h"
#include "option_values.h"
#include "terse/core/check.h"
#include "terse/kernels/cpu_multi_tensor_impl.h"
#include "terse/kernels/lion_rule.h"

namespace terse {

template void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<LionRule>>&);

namespace optim_detail {
namespace {

struct LionDef {
  static constexpr const char* kName = "lion";
  struct Hyper {
    double beta1 = 0.9, beta2 = 0.99, weight_decay = 0;
    bool decoupled_weight_decay = false;
    double initial_lr = 1e-4;  // the group's lr as built, for decoupled_weight_decay
  };
  using Rule = std::variant<LionRule>;

  static std::vector<OptionDef> options() {
    return {{"lr", OptionType::kDouble, "0.0001"},
            {"betas", OptionType::kPair, "0.9/0.99"},
            {"weight_decay", OptionType::kDouble, "0"},
            {"decoupled_weight_decay", OptionType::kBool, "false"}};
  }

  static Hyper parse(const GroupOptions& o) {
    Hyper h;
    h.initial_lr = o.lr();
    h.weight_decay = o.weight_decay();
    std::tie(h.beta1, h.beta2) = o.pair("betas");
    h.decoupled_weight_decay = o.flag("decoupled_weight_decay");
    const std::string& who = o.who();
    // The official check is 0 <= beta <= 1 (beta2 = 1 freezes the momentum).
    TERSE_CHECK(h.beta1 >= 0 && h.beta1 <= 1 && h.beta2 >= 0 && h.beta2 <= 1, InvalidArgument, who,
                ": betas must each be in [0, 1], got ", h.beta1, "/", h.beta2,
                "; 0.9/0.99 is usual (0.95/0.98 for stability)");
    TERSE_CHECK(!h.decoupled_weight_decay || h.initial_lr > 0, InvalidArgument, who,
                ": decoupled_weight_decay=true divides weight_decay by the initial lr, which ",
                "must then be > 0, got lr=", h.initial_lr);
    return h;
  }

  static std::vector<std::string> state_names(const Hyper&) { return {"exp_avg"}; }

  static void describe(const Hyper& h, OptionMap& out) {
    out["weight_decay"] = format_double(h.weight_decay);
    out["betas"] = format_double(h.beta1) + "/" + format_double(h.beta2);
    out["decoupled_weight_decay"] = h.decoupled_weight_decay ? "true" : "false";
  }

  static Rule rule(const Hyper& h, double lr, int64_t step) {
    // lucidrains: wd /= init_lr, so the decay lr * wd / init_lr follows the schedule's factor
    // only, not the lr's magnitude.
    const double wd = h.decoupled_weight_decay ? h.weight_decay / h.initial_lr : h.weight_decay;
    return LionRule::for_step(lr, h.beta1, h.beta2, wd, step);
  }
};

}  // namespace

std::unique_ptr<Optimizer> make_lion(const OptionMap& options, std::vector<ParamGroup> groups) {
  return std::make_unique<FusedOptimizer<LionDef>>(options, std::move(groups));
}

}  // namespace optim_detail
}  // namespace terse

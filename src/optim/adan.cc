// adan: Xie et al. 2024 as in sail-sg/Adan `Adan` (foreach=False)
// (Rule: terse/kernels/adan_rule.h).

#include <algorithm>
#include <cmath>
#include <variant>

#include "fused_optimizer.h"
#include "option_values.h"
#include "terse/core/check.h"
#include "terse/kernels/adan_rule.h"
#include "terse/kernels/cpu_multi_tensor_impl.h"

namespace terse {

template void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<AdanRule>>&);

namespace optim_detail {
namespace {

struct AdanDef {
  static constexpr const char* kName = "adan";
  struct Hyper {
    double beta1 = 0.98, beta2 = 0.92, beta3 = 0.99, eps = 1e-8, weight_decay = 0;
    double max_grad_norm = 0;
    bool no_prox = false;
    int64_t restart_every = 0;
  };
  using Rule = std::variant<AdanRule>;

  static std::vector<OptionDef> options() {
    return {{"lr", OptionType::kDouble, "0.001"},
            {"betas", OptionType::kTriple, "0.98/0.92/0.99"},
            {"eps", OptionType::kDouble, "1e-08"},
            {"weight_decay", OptionType::kDouble, "0"},
            {"max_grad_norm", OptionType::kDouble, "0"},
            {"no_prox", OptionType::kBool, "false"},
            // terse's form of the official restart_opt(): 0 = never.
            {"restart_every", OptionType::kDouble, "0"}};
  }

  static Hyper parse(const GroupOptions& o) {
    o.lr();
    Hyper h;
    h.weight_decay = o.weight_decay();
    const auto b = o.triple("betas");
    h.beta1 = b[0];
    h.beta2 = b[1];
    h.beta3 = b[2];
    h.eps = o.number("eps");
    h.max_grad_norm = o.number("max_grad_norm");
    h.no_prox = o.flag("no_prox");
    const double every = o.number("restart_every");
    const std::string& who = o.who();
    TERSE_CHECK(
        h.beta1 >= 0 && h.beta1 < 1 && h.beta2 >= 0 && h.beta2 < 1 && h.beta3 >= 0 && h.beta3 < 1,
        InvalidArgument, who, ": betas must each be in [0, 1), got ", h.beta1, "/", h.beta2, "/",
        h.beta3, "; 0.98/0.92/0.99 is the default");
    TERSE_CHECK(std::isfinite(h.eps) && h.eps >= 0, InvalidArgument, who,
                ": eps must be a finite number >= 0, got ", h.eps, "; 1e-8 is the default");
    TERSE_CHECK(std::isfinite(h.max_grad_norm) && h.max_grad_norm >= 0, InvalidArgument, who,
                ": max_grad_norm must be a finite number >= 0 (0 = no clipping), got ",
                h.max_grad_norm);
    TERSE_CHECK(every >= 0 && every <= 1e15 && std::floor(every) == every, InvalidArgument, who,
                ": restart_every must be a whole number of steps >= 0 (0 = never), got ", every);
    h.restart_every = static_cast<int64_t>(every);
    return h;
  }

  static std::vector<std::string> state_names(const Hyper&) {
    return {"exp_avg", "exp_avg_sq", "exp_avg_diff", "neg_pre_grad"};
  }

  static void describe(const Hyper& h, OptionMap& out) {
    out["betas"] =
        format_double(h.beta1) + "/" + format_double(h.beta2) + "/" + format_double(h.beta3);
    out["eps"] = format_double(h.eps);
    out["weight_decay"] = format_double(h.weight_decay);
    out["max_grad_norm"] = format_double(h.max_grad_norm);
    out["no_prox"] = h.no_prox ? "true" : "false";
    out["restart_every"] = std::to_string(h.restart_every);
  }

  // The official clip: min(1, max_grad_norm / (||all grads|| + eps)), with max_grad_norm the
  // constructor's (make_adan rejects per-group values) and eps the last group's (the official
  // loop variable).
  static double global_scalar(const std::vector<Hyper>& hypers,
                              const std::function<double()>& global_grad_norm) {
    const Hyper& last = hypers.back();
    if (!(last.max_grad_norm > 0)) return 1.0;
    return std::min(last.max_grad_norm / (global_grad_norm() + last.eps), 1.0);
  }

  static Rule rule(const Hyper& h, double lr, int64_t step, double clip) {
    // restart_opt() after every restart_every steps: the step count starts again from 1.
    const int64_t t = h.restart_every > 0 ? (step - 1) % h.restart_every + 1 : step;
    return AdanRule::for_step(lr, h.beta1, h.beta2, h.beta3, h.eps, h.weight_decay, h.no_prox, clip,
                              t);
  }
};

}  // namespace

std::unique_ptr<Optimizer> make_adan(const OptionMap& options, std::vector<ParamGroup> groups) {
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto it = groups[g].overrides.find("max_grad_norm");
    TERSE_CHECK(it == groups[g].overrides.end(), InvalidArgument, "adan (group ", g,
                "): max_grad_norm = '", it == groups[g].overrides.end() ? "" : it->second,
                "' is set per group, but it clips the norm of all groups' gradients together; ",
                "set it once for the optimizer");
  }
  return std::make_unique<FusedOptimizer<AdanDef>>(options, std::move(groups));
}

}  // namespace optim_detail
}  // namespace terse

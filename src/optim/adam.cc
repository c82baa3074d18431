// adam and adamw: torch.optim.Adam / AdamW, one Rule (terse/kernels/adam_rule.h) that differs
// only in where weight decay goes, so both are defined here.

#include <variant>

#include "fused_optimizer.h"
#include "option_values.h"
#include "terse/core/check.h"
#include "terse/kernels/adam_rule.h"

namespace terse::optim_detail {
namespace {

template <bool kDecoupled>
struct AdamDef {
  static constexpr const char* kName = kDecoupled ? "adamw" : "adam";
  struct Hyper {
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
    bool amsgrad = false, maximize = false;
  };
  using Rule = std::variant<AdamRule<false>, AdamRule<true>>;

  static std::vector<OptionDef> options() {
    return {{"lr", OptionType::kDouble, "0.001"},
            {"betas", OptionType::kPair, "0.9/0.999"},
            {"eps", OptionType::kDouble, "1e-08"},
            {"weight_decay", OptionType::kDouble, kDecoupled ? "0.01" : "0"},
            {"amsgrad", OptionType::kBool, "false"},
            {"maximize", OptionType::kBool, "false"}};
  }

  static Hyper parse(const GroupOptions& o) {
    o.lr();
    Hyper h;
    h.weight_decay = o.weight_decay();
    std::tie(h.beta1, h.beta2) = o.betas();
    h.amsgrad = o.flag("amsgrad");
    h.maximize = o.flag("maximize");
    h.eps = o.positive("eps", "1e-8 is usual");
    return h;
  }

  static std::vector<std::string> state_names(const Hyper& h) {
    if (h.amsgrad) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    return {"exp_avg", "exp_avg_sq"};
  }

  static void describe(const Hyper& h, OptionMap& out) {
    out["weight_decay"] = format_double(h.weight_decay);
    out["betas"] = format_double(h.beta1) + "/" + format_double(h.beta2);
    out["eps"] = format_double(h.eps);
    out["amsgrad"] = h.amsgrad ? "true" : "false";
    out["maximize"] = h.maximize ? "true" : "false";
  }

  static Rule rule(const Hyper& h, double lr, int64_t step) {
    if (h.amsgrad) {
      return AdamRule<true>::for_step(lr, h.beta1, h.beta2, h.eps, h.weight_decay, kDecoupled,
                                      h.maximize, step);
    }
    return AdamRule<false>::for_step(lr, h.beta1, h.beta2, h.eps, h.weight_decay, kDecoupled,
                                     h.maximize, step);
  }
};

}  // namespace

std::unique_ptr<Optimizer> make_adam(const OptionMap& options, std::vector<ParamGroup> groups) {
  return std::make_unique<FusedOptimizer<AdamDef<false>>>(options, std::move(groups));
}

std::unique_ptr<Optimizer> make_adamw(const OptionMap& options, std::vector<ParamGroup> groups) {
  return std::make_unique<FusedOptimizer<AdamDef<true>>>(options, std::move(groups));
}

}  // namespace terse::optim_detail

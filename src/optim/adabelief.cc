// adabelief: Zhuang et al. 2020 as in adabelief_pytorch 0.2.1 `AdaBelief`
// (Rule: terse/kernels/adabelief_rule.h).

#include <cmath>
#include <tuple>
#include <variant>

#include "fused_optimizer.h"
#include "option_values.h"
#include "terse/core/check.h"
#include "terse/kernels/adabelief_rule.h"
#include "terse/kernels/cpu_multi_tensor_impl.h"

namespace terse {

template void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<AdaBeliefRule<false>>>&);
template void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<AdaBeliefRule<true>>>&);

namespace optim_detail {
namespace {

struct AdaBeliefDef {
  static constexpr const char* kName = "adabelief";
  struct Hyper {
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-16, weight_decay = 0;
    bool amsgrad = false, weight_decouple = true, fixed_decay = false, rectify = true,
         degenerated_to_sgd = true;
  };
  using Rule = std::variant<AdaBeliefRule<false>, AdaBeliefRule<true>>;

  // adabelief_pytorch >= 0.1.0 defaults (0.0.5 had eps 1e-8, no decoupling, no rectify).
  static std::vector<OptionDef> options() {
    return {{"lr", OptionType::kDouble, "0.001"},
            {"betas", OptionType::kPair, "0.9/0.999"},
            {"eps", OptionType::kDouble, "1e-16"},
            {"weight_decay", OptionType::kDouble, "0"},
            {"amsgrad", OptionType::kBool, "false"},
            {"weight_decouple", OptionType::kBool, "true"},
            {"fixed_decay", OptionType::kBool, "false"},
            {"rectify", OptionType::kBool, "true"},
            {"degenerated_to_sgd", OptionType::kBool, "true"}};
  }

  static Hyper parse(const GroupOptions& o) {
    o.lr();
    Hyper h;
    h.weight_decay = o.weight_decay();
    std::tie(h.beta1, h.beta2) = o.betas();
    h.eps = o.number("eps");
    h.amsgrad = o.flag("amsgrad");
    h.weight_decouple = o.flag("weight_decouple");
    h.fixed_decay = o.flag("fixed_decay");
    h.rectify = o.flag("rectify");
    h.degenerated_to_sgd = o.flag("degenerated_to_sgd");
    const std::string& who = o.who();
    // The official check is eps >= 0; it is added to the state every step, so keep it small.
    TERSE_CHECK(std::isfinite(h.eps) && h.eps >= 0, InvalidArgument, who,
                ": eps must be a finite number >= 0, got ", h.eps,
                "; 1e-16 is the default (1e-8 where SGD beats Adam, e.g. CNNs)");
    // fixed_decay multiplies p by 1 - weight_decay every step: above 1 it flips the sign.
    TERSE_CHECK(!(h.weight_decouple && h.fixed_decay) || h.weight_decay <= 1, InvalidArgument, who,
                ": weight_decay must be <= 1 with fixed_decay=true, got ", h.weight_decay);
    return h;
  }

  static std::vector<std::string> state_names(const Hyper& h) {
    if (h.amsgrad) return {"exp_avg", "exp_avg_var", "max_exp_avg_var"};
    return {"exp_avg", "exp_avg_var"};
  }

  static void describe(const Hyper& h, OptionMap& out) {
    const auto b = [](bool v) { return v ? "true" : "false"; };
    out["weight_decay"] = format_double(h.weight_decay);
    out["betas"] = format_double(h.beta1) + "/" + format_double(h.beta2);
    out["eps"] = format_double(h.eps);
    out["amsgrad"] = b(h.amsgrad);
    out["weight_decouple"] = b(h.weight_decouple);
    out["fixed_decay"] = b(h.fixed_decay);
    out["rectify"] = b(h.rectify);
    out["degenerated_to_sgd"] = b(h.degenerated_to_sgd);
  }

  static Rule rule(const Hyper& h, double lr, int64_t step) {
    if (h.amsgrad) {
      return AdaBeliefRule<true>::for_step(lr, h.beta1, h.beta2, h.eps, h.weight_decay,
                                           h.weight_decouple, h.fixed_decay, h.rectify,
                                           h.degenerated_to_sgd, step);
    }
    return AdaBeliefRule<false>::for_step(lr, h.beta1, h.beta2, h.eps, h.weight_decay,
                                          h.weight_decouple, h.fixed_decay, h.rectify,
                                          h.degenerated_to_sgd, step);
  }
};

}  // namespace

std::unique_ptr<Optimizer> make_adabelief(const OptionMap& options,
                                          std::vector<ParamGroup> groups) {
  return std::make_unique<FusedOptimizer<AdaBeliefDef>>(options, std::move(groups));
}

}  // namespace optim_detail
}  // namespace terse

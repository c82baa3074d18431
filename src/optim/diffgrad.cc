// diffgrad: Dubey et al. 2020 as in shivram1987/diffGrad `diffGrad_v2.py` `diffgrad`
// (Rule: terse/kernels/diffgrad_rule.h).

#include <cmath>
#include <tuple>
#include <variant>

#include "fused_optimizer.h"
#include "option_values.h"
#include "terse/core/check.h"
#include "terse/kernels/cpu_multi_tensor_impl.h"
#include "terse/kernels/diffgrad_rule.h"

namespace terse {

template void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<DiffGradRule>>&);

namespace optim_detail {
namespace {

struct DiffGradDef {
  static constexpr const char* kName = "diffgrad";
  struct Hyper {
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  };
  using Rule = std::variant<DiffGradRule>;

  static std::vector<OptionDef> options() {
    return {{"lr", OptionType::kDouble, "0.001"},
            {"betas", OptionType::kPair, "0.9/0.999"},
            {"eps", OptionType::kDouble, "1e-08"},
            {"weight_decay", OptionType::kDouble, "0"}};
  }

  static Hyper parse(const GroupOptions& o) {
    o.lr();
    Hyper h;
    h.weight_decay = o.weight_decay();
    std::tie(h.beta1, h.beta2) = o.betas();
    // The official check is eps >= 0, but eps = 0 makes m / sqrt(v) 0/0 wherever g was 0.
    h.eps = o.positive("eps", "1e-8 is usual");
    return h;
  }

  static std::vector<std::string> state_names(const Hyper&) {
    return {"exp_avg", "exp_avg_sq", "previous_grad"};
  }

  static void describe(const Hyper& h, OptionMap& out) {
    out["weight_decay"] = format_double(h.weight_decay);
    out["betas"] = format_double(h.beta1) + "/" + format_double(h.beta2);
    out["eps"] = format_double(h.eps);
  }

  static Rule rule(const Hyper& h, double lr, int64_t step) {
    return DiffGradRule::for_step(lr, h.beta1, h.beta2, h.eps, h.weight_decay, step);
  }
};

}  // namespace

std::unique_ptr<Optimizer> make_diffgrad(const OptionMap& options, std::vector<ParamGroup> groups) {
  return std::make_unique<FusedOptimizer<DiffGradDef>>(options, std::move(groups));
}

}  // namespace optim_detail
}  // namespace terse

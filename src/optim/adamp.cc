// adamp: Heo et al., ICLR 2021 as in clovaai/AdamP adamp/adamp.py `AdamP` (Rule:
// terse/kernels/adamp_rule.h; projection: terse/kernels/cpu_projected.h).

#include <cmath>
#include <tuple>
#include <variant>

#include "option_values.h"
#include "projected_optimizer.h"
#include "projection_options.h"
#include "terse/core/check.h"
#include "terse/kernels/adamp_rule.h"
#include "terse/kernels/cpu_projected_impl.h"

namespace terse {

template std::vector<ProjectionView> cpu_projected_apply(
    const std::vector<CpuProjectedTask<AdamPRule<false>>>&, std::vector<std::vector<RowSums>>*);
template std::vector<ProjectionView> cpu_projected_apply(
    const std::vector<CpuProjectedTask<AdamPRule<true>>>&, std::vector<std::vector<RowSums>>*);

namespace optim_detail {
namespace {

struct AdamPDef {
  static constexpr const char* kName = "adamp";
  struct Hyper {
    double beta1 = 0.9, beta2 = 0.999, weight_decay = 0;
    ProjectionOptions proj;
    bool nesterov = false;
  };
  using Rule = std::variant<AdamPRule<false>, AdamPRule<true>>;

  static std::vector<OptionDef> options() {
    return {{"lr", OptionType::kDouble, "0.001"},    {"betas", OptionType::kPair, "0.9/0.999"},
            {"eps", OptionType::kDouble, "1e-08"},   {"weight_decay", OptionType::kDouble, "0"},
            {"delta", OptionType::kDouble, "0.1"},   {"wd_ratio", OptionType::kDouble, "0.1"},
            {"nesterov", OptionType::kBool, "false"}};
  }

  static Hyper parse(const GroupOptions& o) {
    o.lr();
    Hyper h;
    h.weight_decay = o.weight_decay();
    std::tie(h.beta1, h.beta2) = o.betas();
    h.proj = ProjectionOptions::parse(o);
    h.nesterov = o.flag("nesterov");
    return h;
  }

  static std::vector<std::string> state_names(const Hyper&) { return {"exp_avg", "exp_avg_sq"}; }

  static void describe(const Hyper& h, OptionMap& out) {
    out["weight_decay"] = format_double(h.weight_decay);
    out["betas"] = format_double(h.beta1) + "/" + format_double(h.beta2);
    h.proj.describe(out);
    out["nesterov"] = h.nesterov ? "true" : "false";
  }

  static Rule rule(const Hyper& h, double lr, int64_t step) {
    if (h.nesterov) {
      return AdamPRule<true>::for_step(lr, h.beta1, h.beta2, h.proj.eps, h.weight_decay,
                                       h.proj.delta, h.proj.wd_ratio, step);
    }
    return AdamPRule<false>::for_step(lr, h.beta1, h.beta2, h.proj.eps, h.weight_decay,
                                      h.proj.delta, h.proj.wd_ratio, step);
  }
};

}  // namespace

std::unique_ptr<Optimizer> make_adamp(const OptionMap& options, std::vector<ParamGroup> groups) {
  return std::make_unique<ProjectedOptimizer<AdamPDef>>(options, std::move(groups));
}

}  // namespace optim_detail
}  // namespace terse

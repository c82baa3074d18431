// sgdp: Heo et al., ICLR 2021 as in clovaai/AdamP adamp/sgdp.py `SGDP` (Rule:
// terse/kernels/sgdp_rule.h; projection: terse/kernels/cpu_projected.h).

#include <variant>

#include "option_values.h"
#include "projected_optimizer.h"
#include "projection_options.h"
#include "terse/core/check.h"
#include "terse/kernels/cpu_projected_impl.h"
#include "terse/kernels/sgdp_rule.h"

namespace terse {

template std::vector<ProjectionView> cpu_projected_apply(
    const std::vector<CpuProjectedTask<SgdPRule<false>>>&, std::vector<std::vector<RowSums>>*);
template std::vector<ProjectionView> cpu_projected_apply(
    const std::vector<CpuProjectedTask<SgdPRule<true>>>&, std::vector<std::vector<RowSums>>*);

namespace optim_detail {
namespace {

struct SgdPDef {
  static constexpr const char* kName = "sgdp";
  struct Hyper {
    double momentum = 0, dampening = 0, weight_decay = 0;
    ProjectionOptions proj;
    bool nesterov = false;
  };
  using Rule = std::variant<SgdPRule<false>, SgdPRule<true>>;

  // lr has no default in the official code (torch's `required`): make_sgdp checks it is given.
  static std::vector<OptionDef> options() {
    return {{"lr", OptionType::kDouble, "required"},  {"momentum", OptionType::kDouble, "0"},
            {"dampening", OptionType::kDouble, "0"},  {"weight_decay", OptionType::kDouble, "0"},
            {"nesterov", OptionType::kBool, "false"}, {"eps", OptionType::kDouble, "1e-08"},
            {"delta", OptionType::kDouble, "0.1"},    {"wd_ratio", OptionType::kDouble, "0.1"}};
  }

  static Hyper parse(const GroupOptions& o) {
    o.lr();
    Hyper h;
    h.weight_decay = o.weight_decay();
    h.momentum = o.number("momentum");
    h.dampening = o.number("dampening");
    h.nesterov = o.flag("nesterov");
    h.proj = ProjectionOptions::parse(o);
    const std::string& who = o.who();
    // The decay divides by 1 - momentum.
    TERSE_CHECK(h.momentum >= 0 && h.momentum < 1, InvalidArgument, who,
                ": momentum must be in [0, 1), got ", h.momentum, "; 0.9 is usual");
    TERSE_CHECK(h.dampening >= 0 && h.dampening <= 1, InvalidArgument, who,
                ": dampening must be in [0, 1], got ", h.dampening);
    return h;
  }

  static std::vector<std::string> state_names(const Hyper&) { return {"momentum"}; }

  static void describe(const Hyper& h, OptionMap& out) {
    out["momentum"] = format_double(h.momentum);
    out["dampening"] = format_double(h.dampening);
    out["weight_decay"] = format_double(h.weight_decay);
    out["nesterov"] = h.nesterov ? "true" : "false";
    h.proj.describe(out);
  }

  static Rule rule(const Hyper& h, double lr, int64_t step) {
    if (h.nesterov) {
      return SgdPRule<true>::for_step(lr, h.momentum, h.dampening, h.weight_decay, h.proj.delta,
                                      h.proj.wd_ratio, h.proj.eps, step);
    }
    return SgdPRule<false>::for_step(lr, h.momentum, h.dampening, h.weight_decay, h.proj.delta,
                                     h.proj.wd_ratio, h.proj.eps, step);
  }
};

}  // namespace

std::unique_ptr<Optimizer> make_sgdp(const OptionMap& options, std::vector<ParamGroup> groups) {
  for (size_t g = 0; g < groups.size(); ++g) {
    TERSE_CHECK(options.count("lr") != 0 || groups[g].overrides.count("lr") != 0, InvalidArgument,
                "sgdp (group ", g,
                "): lr is required (the official SGDP has no default); pass e.g. sgdp:lr=0.1");
  }
  return std::make_unique<ProjectedOptimizer<SgdPDef>>(options, std::move(groups));
}

}  // namespace optim_detail
}  // namespace terse

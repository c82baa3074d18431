// sgd: torch.optim.SGD (Rule: terse/kernels/sgd_rule.h).

#include <variant>

#include "fused_optimizer.h"
#include "option_values.h"
#include "terse/core/check.h"
#include "terse/kernels/sgd_rule.h"

namespace terse::optim_detail {
namespace {

struct SgdDef {
  static constexpr const char* kName = "sgd";
  struct Hyper {
    double momentum = 0, dampening = 0, weight_decay = 0;
    bool nesterov = false, maximize = false;
  };
  // momentum = 0 runs the buffer-less rule, as torch keeps no buffer then.
  using Rule = std::variant<SgdRule<false>, SgdRule<true>>;

  static std::vector<OptionDef> options() {
    return {{"lr", OptionType::kDouble, "0.001"},     {"momentum", OptionType::kDouble, "0"},
            {"dampening", OptionType::kDouble, "0"},  {"weight_decay", OptionType::kDouble, "0"},
            {"nesterov", OptionType::kBool, "false"}, {"maximize", OptionType::kBool, "false"}};
  }

  static Hyper parse(const GroupOptions& o) {
    o.lr();
    Hyper h;
    h.weight_decay = o.weight_decay();
    h.momentum = o.number("momentum");
    h.dampening = o.number("dampening");
    h.nesterov = o.flag("nesterov");
    h.maximize = o.flag("maximize");
    const std::string& who = o.who();
    TERSE_CHECK(h.momentum >= 0 && h.momentum < 1, InvalidArgument, who,
                ": momentum must be in [0, 1), got ", h.momentum, "; 0.9 is usual");
    TERSE_CHECK(h.dampening >= 0 && h.dampening <= 1, InvalidArgument, who,
                ": dampening must be in [0, 1], got ", h.dampening);
    TERSE_CHECK(!h.nesterov || (h.momentum > 0 && h.dampening == 0), InvalidArgument, who,
                ": nesterov=true needs momentum > 0 and dampening = 0, got momentum=", h.momentum,
                " dampening=", h.dampening, "; set momentum (e.g. 0.9) or drop ",
                "dampening or nesterov");
    return h;
  }

  static std::vector<std::string> state_names(const Hyper& h) {
    if (h.momentum == 0) return {};
    return {"momentum_buffer"};
  }

  static void describe(const Hyper& h, OptionMap& out) {
    out["weight_decay"] = format_double(h.weight_decay);
    out["momentum"] = format_double(h.momentum);
    out["dampening"] = format_double(h.dampening);
    out["nesterov"] = h.nesterov ? "true" : "false";
    out["maximize"] = h.maximize ? "true" : "false";
  }

  static Rule rule(const Hyper& h, double lr, int64_t step) {
    if (h.momentum == 0) {
      return SgdRule<false>::for_step(lr, 0, h.dampening, h.weight_decay, h.nesterov, h.maximize,
                                      step);
    }
    return SgdRule<true>::for_step(lr, h.momentum, h.dampening, h.weight_decay, h.nesterov,
                                   h.maximize, step);
  }
};

}  // namespace

std::unique_ptr<Optimizer> make_sgd(const OptionMap& options, std::vector<ParamGroup> groups) {
  return std::make_unique<FusedOptimizer<SgdDef>>(options, std::move(groups));
}

}  // namespace terse::optim_detail

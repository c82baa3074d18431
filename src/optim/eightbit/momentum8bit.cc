// momentum8bit: bitsandbytes' SGD8bit, SGD with momentum on an 8-bit buffer (Rule: torch's
// SgdRule, terse/kernels/sgd_rule.h, which bnb's momentum kernel matches with dampening 0 and
// no Nesterov: g += λθ; b = (t = 1) ? g : μb + g; θ -= lr·b).

#include <memory>

#include "../group_options.h"
#include "../option_values.h"
#include "eightbit_optimizer.h"
#include "terse/core/check.h"
#include "terse/kernels/sgd_rule.h"

namespace terse::optim_detail {
namespace {

struct Momentum8bitDef {
  static constexpr const char* kName = "momentum8bit";
  static constexpr bool kSkipNonFiniteGrad = false;  // bnb's 1-state kernel has no such check
  struct Hyper {
    double momentum = 0, weight_decay = 0;
    int64_t min_8bit_size = 4096;
  };
  using Rule = SgdRule<true>;

  static std::vector<OptionDef> options() {
    return {
        {"lr", OptionType::kDouble, "0.001"},     {"momentum", OptionType::kDouble, "0"},
        {"dampening", OptionType::kDouble, "0"},  {"weight_decay", OptionType::kDouble, "0"},
        {"nesterov", OptionType::kBool, "false"}, {"min_8bit_size", OptionType::kDouble, "4096"}};
  }

  static Hyper parse(const GroupOptions& o) {
    o.lr();
    Hyper h;
    h.weight_decay = o.weight_decay();
    h.momentum = o.number("momentum");
    const std::string& who = o.who();
    TERSE_CHECK(h.momentum > 0 && h.momentum < 1, InvalidArgument, who,
                ": momentum must be in (0, 1), got ", h.momentum,
                "; bitsandbytes' SGD8bit has no momentum-free form (it raises for 0): pass e.g. ",
                "momentum=0.9, or use sgd");
    const double dampening = o.number("dampening");
    TERSE_CHECK(dampening == 0, InvalidArgument, who, ": dampening must be 0, got ", dampening,
                "; bitsandbytes' 8-bit momentum kernel has no dampening (SGD8bit ignores it): ",
                "use sgd for dampening");
    TERSE_CHECK(!o.flag("nesterov"), InvalidArgument, who,
                ": nesterov=true is not supported: bitsandbytes' 8-bit momentum kernel has no ",
                "Nesterov step (SGD8bit ignores it); use sgd:nesterov=true");
    h.min_8bit_size = parse_min_8bit_size(o);
    return h;
  }

  static void describe(const Hyper& h, OptionMap& out) {
    out["weight_decay"] = format_double(h.weight_decay);
    out["momentum"] = format_double(h.momentum);
    out["min_8bit_size"] = std::to_string(h.min_8bit_size);
  }

  static Rule rule(const Hyper& h, double lr, int64_t step) {
    return SgdRule<true>::for_step(lr, h.momentum, 0, h.weight_decay, false, false, step);
  }
};

}  // namespace

std::unique_ptr<Optimizer> make_momentum8bit(const OptionMap& options,
                                             std::vector<ParamGroup> groups) {
  return std::make_unique<EightBitOptimizer<Momentum8bitDef>>(options, std::move(groups));
}

}  // namespace terse::optim_detail

// lion8bit: bitsandbytes' Lion8bit (Rule: terse/kernels/lion_rule.h; bnb's 8-bit Lion kernel is
// the same update: θ *= 1 − lr·λ; θ −= lr·sign(β1·m + (1 − β1)·g); m = β2·m + (1 − β2)·g).

#include <memory>
#include <tuple>

#include "../group_options.h"
#include "../option_values.h"
#include "eightbit_optimizer.h"
#include "terse/core/check.h"
#include "terse/kernels/lion_rule.h"

namespace terse::optim_detail {
namespace {

struct Lion8bitDef {
  static constexpr const char* kName = "lion8bit";
  static constexpr bool kSkipNonFiniteGrad = false;  // bnb's 1-state kernel has no such check
  struct Hyper {
    double beta1 = 0.9, beta2 = 0.99, weight_decay = 0;
    int64_t min_8bit_size = 4096;
  };
  using Rule = LionRule;

  static std::vector<OptionDef> options() {
    return {{"lr", OptionType::kDouble, "0.0001"},
            {"betas", OptionType::kPair, "0.9/0.99"},
            {"weight_decay", OptionType::kDouble, "0"},
            {"min_8bit_size", OptionType::kDouble, "4096"}};
  }

  static Hyper parse(const GroupOptions& o) {
    o.lr();
    Hyper h;
    h.weight_decay = o.weight_decay();
    std::tie(h.beta1, h.beta2) = o.pair("betas");
    // bnb's check (Optimizer1State): each beta in [0, 1).
    TERSE_CHECK(h.beta1 >= 0 && h.beta1 < 1 && h.beta2 >= 0 && h.beta2 < 1, InvalidArgument,
                o.who(), ": betas must each be in [0, 1), got ", h.beta1, "/", h.beta2,
                "; 0.9/0.99 is usual (0.95/0.98 for stability)");
    h.min_8bit_size = parse_min_8bit_size(o);
    return h;
  }

  static void describe(const Hyper& h, OptionMap& out) {
    out["weight_decay"] = format_double(h.weight_decay);
    out["betas"] = format_double(h.beta1) + "/" + format_double(h.beta2);
    out["min_8bit_size"] = std::to_string(h.min_8bit_size);
  }

  static Rule rule(const Hyper& h, double lr, int64_t step) {
    return LionRule::for_step(lr, h.beta1, h.beta2, h.weight_decay, step);
  }
};

}  // namespace

std::unique_ptr<Optimizer> make_lion8bit(const OptionMap& options, std::vector<ParamGroup> groups) {
  return std::make_unique<EightBitOptimizer<Lion8bitDef>>(options, std::move(groups));
}

}  // namespace terse::optim_detail

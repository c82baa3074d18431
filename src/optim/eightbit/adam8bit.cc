// adam8bit and adamw8bit: bitsandbytes' Adam8bit / AdamW8bit (Rule: terse/kernels/bnb_adam_rule.h,
// states: terse/kernels/eightbit_block_step.h). bnb runs one kernel for both, weight decay
// decoupled and applied after the step; they differ only in the default weight_decay.

#include <cmath>
#include <memory>
#include <tuple>

#include "../group_options.h"
#include "../option_values.h"
#include "eightbit_optimizer.h"
#include "terse/core/check.h"
#include "terse/kernels/bnb_adam_rule.h"

namespace terse::optim_detail {
namespace {

template <bool kW>
struct Adam8bitDef {
  static constexpr const char* kName = kW ? "adamw8bit" : "adam8bit";
  static constexpr bool kSkipNonFiniteGrad = true;
  struct Hyper {
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
    int64_t min_8bit_size = 4096;
  };
  using Rule = BnbAdamRule;

  static std::vector<OptionDef> options() {
    return {{"lr", OptionType::kDouble, "0.001"},
            {"betas", OptionType::kPair, "0.9/0.999"},
            {"eps", OptionType::kDouble, "1e-08"},
            {"weight_decay", OptionType::kDouble, kW ? "0.01" : "0"},
            {"amsgrad", OptionType::kBool, "false"},
            {"min_8bit_size", OptionType::kDouble, "4096"}};
  }

  static Hyper parse(const GroupOptions& o) {
    o.lr();
    Hyper h;
    h.weight_decay = o.weight_decay();
    std::tie(h.beta1, h.beta2) = o.betas();
    const std::string& who = o.who();
    h.eps = o.positive("eps", "1e-8 is usual");
    TERSE_CHECK(!o.flag("amsgrad"), InvalidArgument, who,
                ": amsgrad=true is not supported: bitsandbytes' 8-bit Adam has no AMSGrad (it ",
                "raises); use adam:amsgrad=true for 32-bit states");
    h.min_8bit_size = parse_min_8bit_size(o);
    return h;
  }

  static void describe(const Hyper& h, OptionMap& out) {
    out["weight_decay"] = format_double(h.weight_decay);
    out["betas"] = format_double(h.beta1) + "/" + format_double(h.beta2);
    out["eps"] = format_double(h.eps);
    out["min_8bit_size"] = std::to_string(h.min_8bit_size);
  }

  static Rule rule(const Hyper& h, double lr, int64_t step) {
    return BnbAdamRule::for_step(lr, h.beta1, h.beta2, h.eps, h.weight_decay, step);
  }
};

}  // namespace

std::unique_ptr<Optimizer> make_adam8bit(const OptionMap& options, std::vector<ParamGroup> groups) {
  return std::make_unique<EightBitOptimizer<Adam8bitDef<false>>>(options, std::move(groups));
}

std::unique_ptr<Optimizer> make_adamw8bit(const OptionMap& options,
                                          std::vector<ParamGroup> groups) {
  return std::make_unique<EightBitOptimizer<Adam8bitDef<true>>>(options, std::move(groups));
}

}  // namespace terse::optim_detail

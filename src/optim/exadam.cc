// exadam: Adly 2024 as in AhmedMostafa16/EXAdam `exadam.py` `EXAdam`
// (Rule: terse/kernels/exadam_rule.h).

#include <variant>

#include "adam_like_hyper.h"
#include "fused_optimizer.h"
#include "terse/kernels/cpu_multi_tensor_impl.h"
#include "terse/kernels/exadam_rule.h"

namespace terse {

template void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<ExAdamRule>>&);

namespace optim_detail {
namespace {

struct ExAdamDef {
  static constexpr const char* kName = "exadam";
  using Hyper = AdamLikeHyper;
  using Rule = std::variant<ExAdamRule>;

  static std::vector<OptionDef> options() { return AdamLikeHyper::options(); }
  static Hyper parse(const GroupOptions& o) { return AdamLikeHyper::parse(o); }

  static std::vector<std::string> state_names(const Hyper&) { return {"m", "v"}; }

  static void describe(const Hyper& h, OptionMap& out) { h.describe(out); }

  static Rule rule(const Hyper& h, double lr, int64_t step) {
    return ExAdamRule::for_step(lr, h.beta1, h.beta2, h.eps, h.weight_decay, step);
  }
};

}  // namespace

std::unique_ptr<Optimizer> make_exadam(const OptionMap& options, std::vector<ParamGroup> groups) {
  return std::make_unique<FusedOptimizer<ExAdamDef>>(options, std::move(groups));
}

}  // namespace optim_detail
}  // namespace terse

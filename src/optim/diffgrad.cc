// diffgrad: Dubey et al. 2020 as in shivram1987/diffGrad `diffGrad_v2.py` `diffgrad`
// (Rule: terse/kernels/diffgrad_rule.h).

#include <variant>

#include "adam_like_hyper.h"
#include "fused_optimizer.h"
#include "terse/kernels/cpu_multi_tensor_impl.h"
#include "terse/kernels/diffgrad_rule.h"

namespace terse {

template void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<DiffGradRule>>&);

namespace optim_detail {
namespace {

struct DiffGradDef {
  static constexpr const char* kName = "diffgrad";
  using Hyper = AdamLikeHyper;
  using Rule = std::variant<DiffGradRule>;

  static std::vector<OptionDef> options() { return AdamLikeHyper::options(); }
  static Hyper parse(const GroupOptions& o) { return AdamLikeHyper::parse(o); }

  static std::vector<std::string> state_names(const Hyper&) {
    return {"exp_avg", "exp_avg_sq", "previous_grad"};
  }

  static void describe(const Hyper& h, OptionMap& out) { h.describe(out); }

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

#pragma once

// The options of Adam-shaped optimizers whose official code takes exactly lr, betas, eps and
// weight_decay, with Adam's defaults (exadam, diffgrad): one definition of their names,
// defaults, checks and normalised form, which each Def uses as its Hyper.

#include <tuple>
#include <vector>

#include "group_options.h"
#include "option_def.h"
#include "option_values.h"

namespace terse::optim_detail {

struct AdamLikeHyper {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;

  static std::vector<OptionDef> options() {
    return {{"lr", OptionType::kDouble, "0.001"},
            {"betas", OptionType::kPair, "0.9/0.999"},
            {"eps", OptionType::kDouble, "1e-08"},
            {"weight_decay", OptionType::kDouble, "0"}};
  }

  // The official checks allow eps = 0, but then the update is 0/0 wherever g was 0 (m / sqrt(v)
  // for diffGrad, v / (v + eps) for EXAdam), so terse wants eps > 0.
  static AdamLikeHyper parse(const GroupOptions& o) {
    o.lr();
    AdamLikeHyper h;
    h.weight_decay = o.weight_decay();
    std::tie(h.beta1, h.beta2) = o.betas();
    h.eps = o.positive("eps", "1e-8 is usual");
    return h;
  }

  void describe(OptionMap& out) const {
    out["weight_decay"] = format_double(weight_decay);
    out["betas"] = format_double(beta1) + "/" + format_double(beta2);
    out["eps"] = format_double(eps);
  }
};

}  // namespace terse::optim_detail

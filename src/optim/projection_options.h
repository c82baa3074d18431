#pragma once

// The options AdamP and SGDP share: eps (cosine clamp and projection norm; AdamP's Adam eps
// too), delta and wd_ratio (Heo et al., ICLR 2021; spec optimizers.md §5).

#include <cmath>
#include <string>

#include "group_options.h"
#include "option_values.h"
#include "terse/core/check.h"

namespace terse::optim_detail {

struct ProjectionOptions {
  double eps = 1e-8, delta = 0.1, wd_ratio = 0.1;

  static ProjectionOptions parse(const GroupOptions& o) {
    ProjectionOptions p;
    p.delta = o.number("delta");
    p.wd_ratio = o.number("wd_ratio");
    const std::string& who = o.who();
    p.eps = o.positive("eps", "1e-8 is usual");
    // The test is |cos| < delta / sqrt(row length): delta = 0 never projects (plain Adam / SGD
    // with decoupled decay); a negative delta would do the same less clearly.
    TERSE_CHECK(std::isfinite(p.delta) && p.delta >= 0, InvalidArgument, who,
                ": delta must be a finite number >= 0, got ", p.delta,
                "; 0.1 is the official default (0 turns the projection off)");
    // wd_ratio scales the decay of the weights found scale-invariant down; above 1 it would
    // decay them more than the others, the opposite of its purpose.
    TERSE_CHECK(p.wd_ratio >= 0 && p.wd_ratio <= 1, InvalidArgument, who,
                ": wd_ratio must be in [0, 1], got ", p.wd_ratio,
                "; 0.1 is the official default (1 keeps the full weight decay)");
    return p;
  }

  void describe(OptionMap& out) const {
    out["eps"] = format_double(eps);
    out["delta"] = format_double(delta);
    out["wd_ratio"] = format_double(wd_ratio);
  }
};

}  // namespace terse::optim_detail

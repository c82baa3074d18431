#pragma once

// SPAM's optimizer-wide counters (spec optimizers.md §12); internal to terse_optim.

#include <cmath>
#include <cstdint>

namespace terse::optim_detail {

// The official code's global counters as functions of the 1-based step t, so nothing beyond
// the step count is saved: `total_step` = t - 1 before the step; `current_step` starts at
// warmup_steps + 1 and is set to 0 after step s when (s + 1) % DeltaT == 0 and s != 0.
struct SpamSchedule {
  int64_t warmup_steps = 150, delta_t = 500, grad_accu_steps = 20;
  bool clipping = true;  // threshold != 0

  // Moments are zeroed at the start of step t when t % DeltaT == 0.
  bool reset(int64_t t) const { return t % delta_t == 0; }

  // Clipping needs t >= grad_accu_steps and t % DeltaT >= grad_accu_steps, so it is off for
  // the first grad_accu_steps - 1 steps and for grad_accu_steps steps from every reset.
  bool clip(int64_t t) const {
    return clipping && t >= grad_accu_steps && t % delta_t >= grad_accu_steps;
  }

  // The official `current_step` at step t: steps since the last reset step r (r >= 2, a
  // multiple of DeltaT), or at least warmup_steps before the first one (no warm-up at start).
  int64_t current_step(int64_t t) const {
    const int64_t r = t / delta_t * delta_t;
    return r >= 2 ? t - r : warmup_steps + t;
  }

  // 1 - CosineDecay(0.99, warmup_steps).get_dr(k): torch's CosineAnnealingLR closed form with
  // T_max = warmup_steps + 1, so 0.01 at the reset step, rising to 1 from k = warmup_steps.
  double warmup_scale(int64_t t) const {
    const int64_t k = current_step(t);
    if (k >= warmup_steps) return 1.0;
    const double kPi = 3.14159265358979323846;
    const double ratio = static_cast<double>(k) / static_cast<double>(warmup_steps + 1);
    return 1.0 - 0.99 * (1.0 + std::cos(kPi * ratio)) / 2.0;
  }
};

}  // namespace terse::optim_detail

#pragma once

#include <cstdint>

#include "terse/core/macros.h"
#include "terse/kernels/projection_scalars.h"

namespace terse {

// SGDP, the element-wise part (Heo et al., ICLR 2021, "AdamP: Slowing Down the Slowdown for
// Momentum Optimizers on Scale-invariant Weights", Algorithm 1; spec optimizers.md §5),
// following the official clovaai/AdamP adamp/sgdp.py `SGDP.step`:
//   b = momentum * b + (1 - dampening) * g     from b = 0: no first-step special case, unlike
//                                              torch.optim.SGD
//   d = kNesterov ? g + momentum * b : b
//   [tensors of ndim > 1: d projected off theta, wd_ratio on the decay: ProjectionScalars]
//   theta *= 1 - lr * weight_decay * wd_ratio / (1 - momentum)    decoupled, before the step
//   theta -= lr * d
// State: s0 = momentum (the buffer, kept even when momentum = 0, as the official code does).
template <bool kNesterov>
struct SgdPRule {
  static constexpr int kNumStates = 1;

  float momentum = 0;
  float one_minus_dampening = 1;
  ProjectionScalars proj;

  // `step` is unused (no bias correction) but kept so every Rule is built the same way.
  static SgdPRule for_step(double lr, double momentum, double dampening, double weight_decay,
                           double delta, double wd_ratio, double eps, int64_t /*step*/) {
    SgdPRule r;
    r.momentum = static_cast<float>(momentum);
    r.one_minus_dampening = static_cast<float>(1.0 - dampening);
    r.proj = ProjectionScalars::make(-lr, lr, weight_decay, 1.0 / (1.0 - momentum), wd_ratio, delta,
                                     eps);
    return r;
  }

  // Advances the buffer and returns the (unprojected) direction d.
  TERSE_HD TERSE_FORCEINLINE float update(float g, float& s0, float& /*s1*/) const {
    s0 = momentum * s0 + one_minus_dampening * g;
    return perturb(g, s0, 0.0f);
  }

  // d from the advanced buffer: the second pass recomputes it, bit-identical.
  TERSE_HD TERSE_FORCEINLINE float perturb(float g, float b, float /*unused*/) const {
    if constexpr (kNesterov) return g + momentum * b;
    (void)g;
    return b;
  }
};

}  // namespace terse

#pragma once

#include <cstdint>

#include "terse/core/macros.h"

namespace terse {

// torch.optim.SGD, one element (spec optimizers.md §2, torch 1.13 `_single_tensor_sgd`):
//   d = maximize ? -g : g;  d += weight_decay * p
//   kMomentum: b = first_step ? d : momentum * b + (1 - dampening) * d
//              d = nesterov ? d + momentum * b : b
//   p -= lr * d
// kMomentum = false is torch's momentum == 0 path, which keeps no buffer (kNumStates = 0).
// Every scalar is fixed for the whole step and set on the host by for_step().
template <bool kMomentum>
struct SgdRule {
  static constexpr int kNumStates = kMomentum ? 1 : 0;

  float lr = 0;
  float momentum = 0;
  float one_minus_dampening = 1;
  float weight_decay = 0;
  float grad_sign = 1;  // -1 when maximize
  bool nesterov = false;
  bool first_step = false;  // torch sets b = d (no dampening) when the buffer is created

  // `step` is the 1-based index of the step about to run.
  static SgdRule for_step(double lr, double momentum, double dampening, double weight_decay,
                          bool nesterov, bool maximize, int64_t step) {
    SgdRule r;
    r.lr = static_cast<float>(lr);
    r.momentum = static_cast<float>(momentum);
    r.one_minus_dampening = static_cast<float>(1.0 - dampening);
    r.weight_decay = static_cast<float>(weight_decay);
    r.grad_sign = maximize ? -1.0f : 1.0f;
    r.nesterov = nesterov;
    r.first_step = step == 1;
    return r;
  }

  // s0 = momentum buffer (kMomentum); s1, s2 are unused scratch (every Rule takes three state
  // slots so one executor loop serves all; unused ones cost nothing once inlined).
  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& s0, float& /*s1*/,
                                             float& /*s2*/) const {
    float d = grad_sign * g + weight_decay * p;
    if constexpr (kMomentum) {
      const float b = first_step ? d : momentum * s0 + one_minus_dampening * d;
      s0 = b;
      d = nesterov ? d + momentum * b : b;
    } else {
      (void)s0;
    }
    p = p - lr * d;
  }
};

}  // namespace terse

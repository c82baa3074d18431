#pragma once

#include "terse/core/dtype.h"
#include "terse/core/macros.h"
#include "terse/kernels/torch_lerp.h"

namespace terse {

// The parameter EMA's update, one element (terse/optim/param_ema.h; timm's ModelEmaV3 through
// torch._foreach_lerp_): s = lerp(s, x, w) with w = 1 - decay in f32, torch.lerp's two-branch
// formula; or s = x when the decay is 0 (the first update, and Lookahead's slow copy), where a
// lerp with w = 1 would give NaN for an infinite x. x is the parameter, in its dtype; s the f32
// average. A Rule of the param-state passes (terse/kernels/param_state_apply.h).
struct EmaRule {
  static constexpr bool kReadsParam = true;
  static constexpr bool kWritesParam = false;
  static constexpr bool kReadsState = true;
  static constexpr bool kWritesState = true;

  float w = 1;
  bool copy = true;

  static EmaRule make(double decay) {
    EmaRule r;
    r.w = static_cast<float>(1.0 - decay);
    r.copy = decay == 0;
    return r;
  }
  // s = x, whatever s held.
  static EmaRule copy_param() { return make(0); }

  template <typename T>
  TERSE_HD TERSE_FORCEINLINE void operator()(T& p, float& s) const {
    const float x = load_as_float(&p, 0);
    s = copy ? x : torch_lerp(s, x, w);
  }
};

}  // namespace terse

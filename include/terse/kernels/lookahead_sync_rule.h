#pragma once

#include "terse/core/dtype.h"
#include "terse/core/macros.h"
#include "terse/kernels/torch_lerp.h"

namespace terse {

// Lookahead's sync, one element (kozistr/pytorch_optimizer `Lookahead`, spec optimizers.md §16):
// with fast weight p (the parameter, in its dtype) and f32 slow weight s,
//   p = lerp(p, s, 1 - alpha)   (as p.lerp_(s, 1 - alpha): f32 math, stored in p's dtype)
//   s = p                       (the stored, rounded value)
// A Rule of the param-state passes (terse/kernels/param_state_apply.h).
struct LookaheadSyncRule {
  static constexpr bool kReadsParam = true;
  static constexpr bool kWritesParam = true;
  static constexpr bool kReadsState = true;
  static constexpr bool kWritesState = true;

  float w = 0.5f;  // 1 - alpha

  static LookaheadSyncRule make(double alpha) {
    LookaheadSyncRule r;
    r.w = static_cast<float>(1.0 - alpha);
    return r;
  }

  template <typename T>
  TERSE_HD TERSE_FORCEINLINE void operator()(T& p, float& s) const {
    store_from_float(&p, 0, torch_lerp(load_as_float(&p, 0), s, w));
    s = load_as_float(&p, 0);
  }
};

}  // namespace terse

#pragma once

#include "terse/core/macros.h"

namespace terse {

// FRUGAL's state-free update (spec optimizers.md §13), one element of a matrix outside the
// state-full subspace:
//   p = p * (1 - lr * weight_decay) + u
//   u = -lr_a * inactive_lr_scale * sign(g)   (sign_sgd; sign(0) = 0, and 0 for a NaN g too,
//                                              where torch.sign gives NaN)
//       -lr_a * inactive_lr_scale * g         (sgd)
//       0                                     (no)
// No state.
struct FrugalInactiveRule {
  static constexpr int kNumStates = 0;

  enum Kind : int { kSignSgd = 0, kSgd = 1, kNo = 2 };

  int kind = kSignSgd;
  float neg_lr = 0;  // -lr_a * inactive_lr_scale
  float decay = 1;   // 1 - lr * weight_decay

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& /*s0*/, float& /*s1*/,
                                             float& /*s2*/) const {
    float u = 0;
    if (kind == kSignSgd) {
      u = neg_lr * static_cast<float>((g > 0) - (g < 0));
    } else if (kind == kSgd) {
      u = neg_lr * g;
    }
    p = p * decay + u;
  }
};

}  // namespace terse

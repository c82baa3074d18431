#pragma once

#include "terse/core/dtype.h"
#include "terse/core/macros.h"

namespace terse {

// p = s rounded to p's dtype, one element: the parameter EMA's weights into the parameters for
// an evaluation (terse/optim/param_ema.h). A Rule of the param-state passes
// (terse/kernels/param_state_apply.h).
struct StoreStateRule {
  static constexpr bool kReadsParam = false;
  static constexpr bool kWritesParam = true;
  static constexpr bool kReadsState = true;
  static constexpr bool kWritesState = false;

  template <typename T>
  TERSE_HD TERSE_FORCEINLINE void operator()(T& p, float& s) const {
    store_from_float(&p, 0, s);
  }
};

}  // namespace terse

#pragma once

#include "terse/core/macros.h"
#include "terse/kernels/torch_lerp.h"

namespace terse {

// The momentum of Muon and AuON, one element (KellerJordan/Muon `muon_update`, ryyzn9/AuON
// `AuON.step`; spec optimizers.md §14), writing the update direction to a work buffer instead
// of into the gradient as the references do:
//   m = lerp(m, g, 1 - momentum)                       (torch.lerp's two-branch formula)
//   u = nesterov ? lerp(g, m, momentum) : m
// States: s0 = momentum_buffer, s1 = u (the work buffer the matrix pass reads next). The
// parameter is left as it is.
struct LerpMomentumRule {
  static constexpr int kNumStates = 2;

  float one_minus_momentum = 0.05f;
  float momentum = 0.95f;
  bool nesterov = true;

  static LerpMomentumRule make(double momentum, bool nesterov) {
    LerpMomentumRule r;
    r.one_minus_momentum = static_cast<float>(1.0 - momentum);
    r.momentum = static_cast<float>(momentum);
    r.nesterov = nesterov;
    return r;
  }

  TERSE_HD TERSE_FORCEINLINE void operator()(float& /*p*/, float g, float& s0, float& s1,
                                             float& /*s2*/) const {
    s0 = torch_lerp(s0, g, one_minus_momentum);
    s1 = nesterov ? torch_lerp(g, s0, momentum) : s0;
  }
};

}  // namespace terse

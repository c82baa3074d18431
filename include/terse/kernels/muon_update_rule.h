#pragma once

#include "terse/core/dtype.h"
#include "terse/core/macros.h"

namespace terse {

// Muon's parameter update, one element, from the orthogonalised update X (KellerJordan/Muon
// `muon_update` and `SingleDeviceMuon.step`; spec optimizers.md §14):
//   u = X * scale          scale = sqrt(max(1, rows / cols)); rounded to bf16 when the
//                          iteration ran in bf16 (ns_bf16), as the reference's bf16 tensor is
//   p = p * (1 - lr * weight_decay) - lr * u
// State: s0 = X (read; written back with u). Skipped scaling when scale == 1, as the CPU does.
struct MuonUpdateRule {
  static constexpr int kNumStates = 1;

  float scale = 1;
  bool scaled = false;  // scale != 1
  bool bf16 = true;
  float decay = 1;  // 1 - lr * weight_decay
  float neg_lr = 0;

  static MuonUpdateRule make(double lr, double weight_decay, double scale, bool bf16) {
    MuonUpdateRule r;
    r.scale = static_cast<float>(scale);
    r.scaled = scale != 1.0;
    r.bf16 = bf16;
    r.decay = static_cast<float>(1.0 - lr * weight_decay);
    r.neg_lr = static_cast<float>(-lr);
    return r;
  }

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float /*g*/, float& s0, float& /*s1*/,
                                             float& /*s2*/) const {
    if (scaled) {
      const float v = s0 * scale;
      s0 = bf16 ? to_float(to_bfloat16(v)) : v;
    }
    p = p * decay + neg_lr * s0;
  }
};

}  // namespace terse

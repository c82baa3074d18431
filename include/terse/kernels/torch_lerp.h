#pragma once

#include "terse/core/macros.h"

namespace terse {

// torch.lerp(start, end, w) as torch computes it (two forms, chosen by w, for accuracy near 1):
// start + w (end - start) when |w| < 0.5, else end - (end - start) (1 - w). Marked TERSE_HD so
// the CPU loops and the CUDA Rules (muon_rule.h, auon_rule.h) give the same bits.
TERSE_HD TERSE_FORCEINLINE float torch_lerp(float start, float end, float w) {
  return w < 0.5f ? start + w * (end - start) : end - (end - start) * (1.0f - w);
}

}  // namespace terse

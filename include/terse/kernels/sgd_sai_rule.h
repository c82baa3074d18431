#pragma once

#include <cstdint>

#include "terse/core/macros.h"

namespace terse {

// SGD-SaI, one element (Xu et al. 2024, "No More Adam: Learning Rate Scaling at Initialization
// is All You Need", arXiv 2412.11768; spec optimizers.md §4), following the official
// AnonymousAlethiometer/SGD_SaI `SGD_sai` v1.0.3:
//   once per tensor, from its first gradient: gsnr = ||g||_2 / (std_unbiased(g) + eps)
//                                               (std of a 1-element tensor is NaN -> 0)
//   b = first step ? g : momentum * b + (1 - momentum) * g
//   p = p * (1 - lr * weight_decay) - lr * gsnr * b     decoupled decay, not scaled by gsnr
// The per-tensor scale lr * gsnr comes from for_tensor() (the optimizer keeps gsnr as state).
// Where the code differs from the paper: the paper (and v1.0.4) divides gsnr by its maximum over
// all tensors; v1.0.3 (the golden reference) does not. kMomentum = false is momentum == 0, where
// b = g and no buffer is kept (the official code fails there on an undefined buffer).
// State: s0 = momentum_buffer (kMomentum); s1, s2 unused scratch.
template <bool kMomentum>
struct SgdSaiRule {
  static constexpr int kNumStates = kMomentum ? 1 : 0;

  float momentum = 0.9f, one_minus_momentum = 0.1f;
  float decay = 1;     // 1 - lr * weight_decay
  float neg_step = 0;  // -lr * gsnr, set by for_tensor()
  bool first_step = false;
  double lr = 0;  // host only, for for_tensor()

  static SgdSaiRule for_step(double lr, double momentum, double weight_decay, int64_t step) {
    SgdSaiRule r;
    r.momentum = static_cast<float>(momentum);
    r.one_minus_momentum = static_cast<float>(1.0 - momentum);
    r.decay = static_cast<float>(1.0 - weight_decay * lr);
    r.lr = lr;
    r.first_step = step == 1;
    return r;
  }

  // This tensor's rule: the step size lr * gsnr, in double on the host.
  SgdSaiRule for_tensor(float gsnr) const {
    SgdSaiRule r = *this;
    r.neg_step = static_cast<float>(-(lr * static_cast<double>(gsnr)));
    return r;
  }

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& s0, float& /*s1*/,
                                             float& /*s2*/) const {
    float b = g;
    if constexpr (kMomentum) {
      b = first_step ? g : momentum * s0 + one_minus_momentum * g;
      s0 = b;
    } else {
      (void)s0;
    }
    p = p * decay + neg_step * b;
  }
};

}  // namespace terse

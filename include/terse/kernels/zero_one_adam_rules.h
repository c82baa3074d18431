#pragma once

#include <cmath>

#include "terse/core/macros.h"

namespace terse {

// The element-wise passes of 0/1 Adam (terse/train/zero_one_adam.h), one formula for the CPU loop
// and the CUDA multi-tensor executor (bit-identical: no FMA contraction, IEEE division and square
// root on both). u = m / (sqrt(v) + eps) + wd p; every step ends p = p + neg_lr u.

// The per-group float constants of one step.
struct ZeroOneAdamConsts {
  float b1 = 0.9f, omb1 = 0.1f, b2 = 0.999f, omb2 = 0.001f, neg_lr = 0, wd = 0, eps = 1e-8f;

  // p + neg_lr u with the current m and v.
  TERSE_HD TERSE_FORCEINLINE float stepped(float p, float m, float v) const {
    const float den = std::sqrt(v) + eps;
    return p + neg_lr * (m / den + wd * p);
  }
};

// A variance step (g averaged densely): s0 = m, s1 = v.
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p += neg_lr u
struct ZeroOneVarianceRule {
  static constexpr int kNumStates = 2;
  ZeroOneAdamConsts c;

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& m, float& v,
                                             float& /*unused*/) const {
    m = c.b1 * m + c.omb1 * g;
    v = c.b2 * v + c.omb2 * (g * g);
    p = c.stepped(p, m, v);
  }
};

// A step with v frozen: s0 = m, s1 = v (read). kMask (the 1-bit steps of the variance phase, g
// the all-reduced gradient): m = 0 where v is still exactly 0 (no averaged gradient was ever
// seen; one bit cannot say 0). Without (local steps, g this rank's gradient): m = b1 m + (1-b1) g.
// Then p += neg_lr u.
template <bool kMask>
struct ZeroOneMomentumRule {
  static constexpr int kNumStates = 2;
  ZeroOneAdamConsts c;

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& m, float& v,
                                             float& /*unused*/) const {
    if (kMask) {
      m = v > 0.0f ? c.b1 * m + c.omb1 * g : 0.0f;
    } else {
      m = c.b1 * m + c.omb1 * g;
    }
    p = c.stepped(p, m, v);
  }
};

// Before a sync's all-reduce, the local step into the send buffer only (a failed all-reduce then
// leaves every rank unchanged): s0 = m, s1 = v, s2 = p_sync (all read), s3 = send (written):
//   send = (p_new - p_sync) (sqrt(v) + eps),  p_new the local step's p.  p and m unchanged.
struct ZeroOneSyncSendRule {
  static constexpr int kNumStates = 4;
  ZeroOneAdamConsts c;

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& m, float& v, float& sync,
                                             float& send) const {
    const float mk = c.b1 * m + c.omb1 * g;
    const float den = std::sqrt(v) + c.eps;
    const float p_new = p + c.neg_lr * (mk / den + c.wd * p);
    send = (p_new - sync) * den;
  }
};

// After a sync's all-reduce, g = a (the all-reduced send buffer): s0 = m, s1 = v (read),
// s2 = p_sync.
//   a = v > 0 ? a : 0  (a coordinate that never had a gradient did not move locally, but its
//                       all-reduced update is +-scale: keep it at p_sync)
//   p = p_sync + a / (sqrt(v) + eps);  p_sync = p;  m = lrs_positive ? -(a / lrs) : 0
struct ZeroOneSyncApplyRule {
  static constexpr int kNumStates = 3;
  float eps = 1e-8f, lrs = 0;
  bool lrs_positive = false;  // the sum of lr since the last sync (in double) is > 0

  TERSE_HD TERSE_FORCEINLINE void operator()(float& p, float g, float& m, float& v,
                                             float& sync) const {
    const float a = v > 0.0f ? g : 0.0f;
    const float den = std::sqrt(v) + eps;
    p = sync + a / den;
    sync = p;
    m = lrs_positive ? -(a / lrs) : 0.0f;
  }
};

}  // namespace terse

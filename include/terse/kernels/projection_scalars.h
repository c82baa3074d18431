#pragma once

#include <cmath>

namespace terse {

// The per-step scalars of an AdamP / SGDP step that are not element-wise (Heo et al., ICLR
// 2021; spec optimizers.md §5), shared by AdamPRule and SgdPRule and read by
// cpu_projected_apply (cpu_projected.h):
//   theta <- theta * decay  (decay_projected where the update was projected), then
//   theta <- theta + neg_step * perturb
// A tensor of more than one dimension is projected when, in its channel view (one row per
// index of dim 0) or else its layer view (one row), every row has
//   |cos(g_row, theta_row)| < delta / sqrt(row length),  cos's norms clamped below by eps
// as torch's F.cosine_similarity does; then perturb_row -= theta_n * <theta_n, perturb_row>
// with theta_n = theta_row / (|theta_row| + eps).
struct ProjectionScalars {
  float neg_step = 0;
  float decay = 1;            // 1 - lr * weight_decay (SGDP: / (1 - momentum))
  float decay_projected = 1;  // the same with weight_decay * wd_ratio
  double delta = 0.1;
  double eps = 1e-8;  // the projection's eps, in double as the reductions are

  // weight_decay_scale is 1 for AdamP and 1 / (1 - momentum) for SGDP. The official code
  // skips the decay when weight_decay is 0; 1 - 0 is exactly 1, so this is the same.
  static ProjectionScalars make(double neg_step, double lr, double weight_decay,
                                double weight_decay_scale, double wd_ratio, double delta,
                                double eps) {
    ProjectionScalars s;
    s.neg_step = static_cast<float>(neg_step);
    s.decay = static_cast<float>(1.0 - lr * weight_decay * weight_decay_scale);
    s.decay_projected = static_cast<float>(1.0 - lr * weight_decay * wd_ratio * weight_decay_scale);
    s.delta = delta;
    s.eps = eps;
    return s;
  }
};

}  // namespace terse

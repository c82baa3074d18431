#pragma once

// For the adamp and sgdp tests: the official clovaai/AdamP steps (adamp.py, sgdp.py) written
// out in double from the spec (optimizers.md §5), tensors with shapes, and gradients made to
// pass the cosine test in the channel or only in the layer view.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "terse/optim/optimizer.h"

namespace terse::test {

// One parameter tensor with f32 storage for terse and a double copy for the reference.
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> value, grad;
  std::vector<double> ref, s0, s1;  // reference theta and states

  Tensor(std::vector<int64_t> shape_, std::mt19937& rng) : shape(std::move(shape_)) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::normal_distribution<double> normal(0, 1);
    value.resize(static_cast<size_t>(n));
    for (auto& x : value) x = static_cast<float>(normal(rng));
    grad.assign(value.size(), 0.0f);
    ref.assign(value.begin(), value.end());
    s0.assign(value.size(), 0.0);
    s1.assign(value.size(), 0.0);
  }
  size_t size() const { return value.size(); }
  Param param(const std::string& name = "") {
    return Param{TensorView::of(value.data(), static_cast<int64_t>(value.size())),
                 TensorView::of(grad.data(), static_cast<int64_t>(grad.size())), shape, name};
  }
};

enum class RefView { kNone, kChannel, kLayer };

// adamp.py / sgdp.py `_projection`: tries the channel view (shape[0] rows), then the layer
// view; projects `perturb` off theta in the first whose max |cos(g, theta)| per row is below
// delta / sqrt(row length). Returns the view used; *wd becomes wd_ratio when one is.
inline RefView ref_projection(const std::vector<int64_t>& shape, const std::vector<double>& p,
                              const std::vector<double>& g, std::vector<double>& perturb,
                              double delta, double wd_ratio, double eps, double* wd) {
  *wd = 1;
  if (shape.size() <= 1) return RefView::kNone;
  const size_t n = p.size();
  for (const size_t rows : {static_cast<size_t>(shape[0]), size_t{1}}) {
    const size_t len = n / rows;
    double worst = 0;
    for (size_t r = 0; r < rows; ++r) {
      double gp = 0, gg = 0, pp = 0;
      for (size_t e = r * len; e < (r + 1) * len; ++e) {
        gp += g[e] * p[e];
        gg += g[e] * g[e];
        pp += p[e] * p[e];
      }
      worst = std::max(
          worst, std::fabs(gp) / (std::max(std::sqrt(gg), eps) * std::max(std::sqrt(pp), eps)));
    }
    if (worst < delta / std::sqrt(static_cast<double>(len))) {
      for (size_t r = 0; r < rows; ++r) {
        double pp = 0;
        for (size_t e = r * len; e < (r + 1) * len; ++e) pp += p[e] * p[e];
        const double norm = std::sqrt(pp) + eps;
        double dot = 0;
        for (size_t e = r * len; e < (r + 1) * len; ++e) dot += p[e] / norm * perturb[e];
        for (size_t e = r * len; e < (r + 1) * len; ++e) perturb[e] -= p[e] / norm * dot;
      }
      *wd = wd_ratio;
      return rows == 1 ? RefView::kLayer : RefView::kChannel;
    }
  }
  return RefView::kNone;
}

struct AdamPRef {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0, delta = 0.1,
         wd_ratio = 0.1;
  bool nesterov = false;

  // One official AdamP step on t.ref with t.grad (s0 = exp_avg, s1 = exp_avg_sq); 1-based step.
  RefView step(Tensor& t, int64_t step) const {
    const double bc1 = 1 - std::pow(beta1, static_cast<double>(step));
    const double bc2 = 1 - std::pow(beta2, static_cast<double>(step));
    std::vector<double> g(t.grad.begin(), t.grad.end()), perturb(t.size());
    for (size_t e = 0; e < t.size(); ++e) {
      t.s0[e] = t.s0[e] * beta1 + (1 - beta1) * g[e];
      t.s1[e] = t.s1[e] * beta2 + (1 - beta2) * g[e] * g[e];
      const double den = std::sqrt(t.s1[e]) / std::sqrt(bc2) + eps;
      perturb[e] = (nesterov ? beta1 * t.s0[e] + (1 - beta1) * g[e] : t.s0[e]) / den;
    }
    double wd = 1;
    const RefView view = ref_projection(t.shape, t.ref, g, perturb, delta, wd_ratio, eps, &wd);
    for (size_t e = 0; e < t.size(); ++e) {
      if (weight_decay > 0) t.ref[e] *= 1 - lr * weight_decay * wd;
      t.ref[e] -= lr / bc1 * perturb[e];
    }
    return view;
  }
};

struct SgdPRef {
  double lr = 0.1, momentum = 0, dampening = 0, weight_decay = 0, eps = 1e-8, delta = 0.1,
         wd_ratio = 0.1;
  bool nesterov = false;

  // One official SGDP step on t.ref with t.grad (s0 = the momentum buffer).
  RefView step(Tensor& t) const {
    std::vector<double> g(t.grad.begin(), t.grad.end()), d(t.size());
    for (size_t e = 0; e < t.size(); ++e) {
      t.s0[e] = t.s0[e] * momentum + (1 - dampening) * g[e];
      d[e] = nesterov ? g[e] + momentum * t.s0[e] : t.s0[e];
    }
    double wd = 1;
    const RefView view = ref_projection(t.shape, t.ref, g, d, delta, wd_ratio, eps, &wd);
    for (size_t e = 0; e < t.size(); ++e) {
      if (weight_decay > 0) t.ref[e] *= 1 - lr * weight_decay * wd / (1 - momentum);
      t.ref[e] -= lr * d[e];
    }
    return view;
  }
};

// Gradient kinds for a tensor of ndim > 1: random (correlated with theta, so the cosine test
// fails in both views), orthogonal to theta row by row (the channel view passes), or orthogonal
// to theta as a whole with row 0 parallel to theta's row 0 (only the layer view passes).
enum class GradKind { kRandom, kRowOrthogonal, kLayerOrthogonal };

inline void make_grad(Tensor& t, GradKind kind, std::mt19937& rng) {
  std::normal_distribution<double> normal(0, 1);
  std::vector<double> g(t.size());
  for (size_t e = 0; e < t.size(); ++e) g[e] = normal(rng) + 0.5 * t.ref[e];
  const size_t rows = t.shape.size() > 1 ? static_cast<size_t>(t.shape[0]) : 1;
  const size_t len = t.size() / rows;
  const auto remove_theta = [&](size_t b, size_t e) {
    double gp = 0, pp = 0;
    for (size_t i = b; i < e; ++i) {
      gp += g[i] * t.ref[i];
      pp += t.ref[i] * t.ref[i];
    }
    for (size_t i = b; i < e; ++i) g[i] -= gp / pp * t.ref[i];
  };
  if (kind == GradKind::kRowOrthogonal) {
    for (size_t r = 0; r < rows; ++r) remove_theta(r * len, (r + 1) * len);
  } else if (kind == GradKind::kLayerOrthogonal) {
    for (size_t i = 0; i < len; ++i) g[i] = 0.3 * t.ref[i];
    remove_theta(0, t.size());  // row 0 stays parallel to theta's row 0
  }
  for (size_t e = 0; e < t.size(); ++e) t.grad[e] = static_cast<float>(g[e]);
}

// Largest |a - b| / max(|b|, 0.1 * max|b|), as the golden tests measure.
inline double max_relative_error(const Tensor& t) {
  double scale = 0, worst = 0;
  for (double b : t.ref) scale = std::max(scale, std::fabs(b));
  for (size_t e = 0; e < t.size(); ++e) {
    const double err =
        std::fabs(t.value[e] - t.ref[e]) / std::max(std::fabs(t.ref[e]), 0.1 * scale);
    if (!(err <= worst)) worst = err;
  }
  return worst;
}

}  // namespace terse::test

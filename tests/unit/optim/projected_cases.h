#pragma once

// Tensors for AdamP / SGDP executor tests (tests/unit/optim/projected_order_test.cc on the CPU,
// tests/parity/cuda_projected_test.cc against the GPU): shapes with rows shorter and longer
// than a chunk, odd tails, ndim 1, any storage dtype, and gradients made from the current
// params so that step after step a tensor takes the channel view, the layer view, neither, or
// has values over a wide range of magnitudes (then the order of the double sums shows in their
// bits).

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "terse/core/dtype.h"
#include "terse/kernels/projected_task.h"
#include "terse/kernels/projection_choice.h"

namespace terse::test {

enum class GradKind {
  kRandom,   // uniform noise: in general no view passes the cosine test
  kChannel,  // every row orthogonal to theta's: the channel view
  kLayer,    // row 0 parallel to theta's and tiny, the others orthogonal: the layer view only
  kWide,     // params and grads of magnitudes 2^-E .. 2^E (E by dtype), random signs
  kAligned,  // every row parallel to theta's (g = theta / 2): no view
};

struct ProjCase {
  std::vector<int64_t> shape;
  GradKind kind;
  std::optional<ProjectionView> expect;  // the view every step must take, where it is certain
};

// The cases both tests run: ndim 1 and empty tensors (never projected), rows of 1, 4, 9, 33 and
// 35 elements, rows of exactly one chunk, of a chunk and one element, of two chunks and a tail;
// one-row tensors; each view with one group of kProjectionFanout rows, with several, and with
// more than kProjectionFanout groups (the layer's sum then takes three rounds).
inline std::vector<ProjCase> proj_cases() {
  using V = ProjectionView;
  return {{{1}, GradKind::kRandom, V::kNone},
          {{4097}, GradKind::kRandom, V::kNone},
          {{0}, GradKind::kRandom, V::kNone},
          {{3, 5, 7}, GradKind::kChannel, V::kChannel},
          {{6, 4}, GradKind::kChannel, V::kChannel},
          {{64, 33}, GradKind::kLayer, V::kLayer},
          {{257, 9}, GradKind::kRandom, std::nullopt},
          {{257, 9}, GradKind::kWide, std::nullopt},
          {{5, 1}, GradKind::kRandom, std::nullopt},
          {{2, 70001}, GradKind::kChannel, V::kChannel},
          {{1, 65536}, GradKind::kRandom, std::nullopt},
          {{4, 65537}, GradKind::kLayer, V::kLayer},
          {{1, 131075}, GradKind::kWide, std::nullopt},
          {{1, 5}, GradKind::kChannel, V::kChannel},
          {{1, 7}, GradKind::kAligned, V::kNone},
          {{256, 5}, GradKind::kChannel, V::kChannel},
          {{256, 3}, GradKind::kLayer, V::kLayer},
          {{300, 7}, GradKind::kLayer, V::kLayer},
          {{513, 3}, GradKind::kAligned, V::kNone},
          {{65537, 3}, GradKind::kChannel, V::kChannel},
          {{70000, 3}, GradKind::kLayer, V::kLayer},
          {{70001, 3}, GradKind::kWide, std::nullopt},
          {{66000, 1}, GradKind::kAligned, V::kNone}};
}

inline std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// One tensor of a projected step in host memory: params and grads stored as `dtype`, f32
// states (s1 used by two-state Rules only).
struct HostTensor {
  std::vector<int64_t> shape;
  GradKind kind = GradKind::kRandom;
  DType dtype = DType::kF32;
  int64_t n = 0, rows = 0;
  std::vector<unsigned char> p, g;
  std::vector<float> s0, s1;
  std::mt19937_64 rng;

  HostTensor(const ProjCase& c, DType dt, uint64_t seed)
      : shape(c.shape), kind(c.kind), dtype(dt), rng(seed) {
    n = 1;
    for (int64_t d : shape) n *= d;
    rows = shape.size() > 1 ? shape[0] : 0;
    p.assign(static_cast<size_t>(n) * dtype_size(dtype), 0);
    g = p;
    s0.assign(static_cast<size_t>(n), 0.0f);
    s1 = s0;
    for (int64_t i = 0; i < n; ++i) set(p, i, kind == GradKind::kWide ? wide() : uniform(1.0));
  }

  float get(const std::vector<unsigned char>& v, int64_t i) const {
    switch (dtype) {
      case DType::kBF16:
        return load_as_float(reinterpret_cast<const BFloat16*>(v.data()), i);
      case DType::kF16:
        return load_as_float(reinterpret_cast<const Half*>(v.data()), i);
      default:
        return load_as_float(reinterpret_cast<const float*>(v.data()), i);
    }
  }
  void set(std::vector<unsigned char>& v, int64_t i, float x) {
    switch (dtype) {
      case DType::kBF16:
        store_from_float(reinterpret_cast<BFloat16*>(v.data()), i, x);
        break;
      case DType::kF16:
        store_from_float(reinterpret_cast<Half*>(v.data()), i, x);
        break;
      default:
        store_from_float(reinterpret_cast<float*>(v.data()), i, x);
        break;
    }
  }

  float uniform(double scale) {
    return static_cast<float>((std::uniform_real_distribution<double>(-1, 1)(rng)) * scale);
  }
  // +-[0.5, 1) * 2^e, e in [-E, E]: f16 keeps E small enough to stay normal.
  float wide() {
    const int e_max = dtype == DType::kF16 ? 6 : 20;
    const int e = std::uniform_int_distribution<int>(-e_max, e_max)(rng);
    const double u = std::uniform_real_distribution<double>(0.5, 1)(rng);
    return static_cast<float>(std::ldexp(std::bernoulli_distribution(0.5)(rng) ? u : -u, e));
  }

  // The next gradient, from the current params (see GradKind).
  void next_grad() {
    const int64_t len = rows > 0 ? n / rows : n;
    for (int64_t r = 0; r < (rows > 0 ? rows : 1) && n > 0; ++r) {
      const int64_t b = r * len;
      std::vector<double> noise(static_cast<size_t>(len));
      for (auto& x : noise) x = kind == GradKind::kWide ? wide() : uniform(0.1);
      if (kind == GradKind::kAligned) {
        for (int64_t e = 0; e < len; ++e) set(g, b + e, 0.5f * get(p, b + e));
        continue;
      }
      if (kind == GradKind::kLayer && r == 0) {
        for (int64_t e = 0; e < len; ++e) set(g, b + e, 1e-5f * get(p, b + e));
        continue;
      }
      double coef = 0;  // the noise minus its component along theta's row
      if (kind == GradKind::kChannel || kind == GradKind::kLayer) {
        double np = 0, pp = 0;
        for (int64_t e = 0; e < len; ++e) {
          np += noise[static_cast<size_t>(e)] * get(p, b + e);
          pp += static_cast<double>(get(p, b + e)) * get(p, b + e);
        }
        if (pp > 0) coef = np / pp;
      }
      for (int64_t e = 0; e < len; ++e) {
        set(g, b + e, static_cast<float>(noise[static_cast<size_t>(e)] - coef * get(p, b + e)));
      }
    }
  }

  // The task over these host buffers.
  template <typename Rule>
  ProjectedTask<Rule> task(const Rule& rule) {
    ProjectedTask<Rule> t;
    t.rule = rule;
    t.param = TensorView(p.data(), n, dtype);
    t.grad = TensorView(g.data(), n, dtype);
    t.states[0] = s0.data();
    if constexpr (Rule::kNumStates > 1) t.states[1] = s1.data();
    t.rows = rows;
    return t;
  }
};

// Whether two lists of row sums hold the same bits.
inline bool same_bits(const std::vector<RowSums>& a, const std::vector<RowSums>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(RowSums)) == 0);
}

}  // namespace terse::test

#pragma once

// The reductions of an AdamP / SGDP step (projection_scalars.h), shared by the CPU and the CUDA
// executors so both pick the same view from the same sums: the per-row sums, the fixed pieces
// they are taken over, the fixed order of the layer's sum, and the official _projection's
// choice.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "terse/core/macros.h"
#include "terse/kernels/cpu_chunks.h"
#include "terse/kernels/projected_task.h"

namespace terse {

// <g,theta>, |g|^2, |theta|^2, <theta,perturb> of one row (or piece of a row).
struct RowSums {
  double gp = 0, gg = 0, pp = 0, pd = 0;

  TERSE_HD RowSums& operator+=(const RowSums& s) {
    gp += s.gp;
    gg += s.gg;
    pp += s.pp;
    pd += s.pd;
    return *this;
  }
};

// The sums of a row of `len` elements are taken over pieces: the whole row when it is shorter
// than kCpuChunkElements, else pieces of kCpuChunkElements from the row's start (the last one
// shorter). Per piece, element i goes to lane (i - piece start) % 8, each lane in element order
// from +0, and the 8 lanes are added as ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)); a row
// is the sum of its pieces in order from +0. The products are f32 x f32 in double, exact.
inline constexpr int kProjectionLanes = 8;
static_assert(kCpuChunkElements % kProjectionLanes == 0,
              "a piece must start on a lane boundary of its row");
inline int64_t projection_pieces_per_row(int64_t len) {
  return len >= kCpuChunkElements ? (len + kCpuChunkElements - 1) / kCpuChunkElements : 1;
}

// The official _projection's choice, in pieces both executors run (cpu_projected_impl.h on the
// host, src/kernels/cuda/projected_apply.cu on the GPU, which picks the view there too): the
// same double operations in the same order, so the same view and coefficients.

// torch's F.cosine_similarity of g and theta over a row (or the layer): each norm clamped
// below by eps (std::max(a, b) is a < b ? b : a, so a NaN norm stays NaN).
TERSE_HD inline double projection_cosine(const RowSums& s, double eps) {
  const double ng = sqrt(s.gg), np = sqrt(s.pp);
  return fabs(s.gp) / ((ng < eps ? eps : ng) * (np < eps ? eps : np));
}

// <theta,perturb> / (|theta| + eps)^2: what perturb loses along theta, per unit of theta.
TERSE_HD inline float projection_coefficient(const RowSums& s, double eps) {
  const double norm = sqrt(s.pp) + eps;
  return static_cast<float>(s.pd / (norm * norm));
}

// Whether a row of a tensor of numel elements in `rows` rows passes the channel view's test.
// The official code takes the max of the rows' cosines (a NaN wins) and compares it with the
// bound: the same as every row passing on its own (a NaN fails), in any order.
TERSE_HD inline bool projection_row_passes(const RowSums& s, int64_t numel, int64_t rows,
                                           double delta, double eps) {
  return projection_cosine(s, eps) < delta / sqrt(static_cast<double>(numel / rows));
}

// The view from every_row_passes (projection_row_passes of all rows) and the layer's sums
// (projection_layer_sum; not read when every row passes or rows = 1: one row's layer view is
// its channel view, already rejected).
TERSE_HD inline ProjectionView projection_view(bool every_row_passes, const RowSums& layer,
                                               int64_t numel, int64_t rows, double delta,
                                               double eps) {
  if (every_row_passes) return ProjectionView::kChannel;
  if (rows > 1 && projection_cosine(layer, eps) < delta / sqrt(static_cast<double>(numel))) {
    return ProjectionView::kLayer;
  }
  return ProjectionView::kNone;
}

// The layer's sums from the rows' sums, in a fixed order that a GPU can follow in parallel:
// the rows in groups of kProjectionFanout (the last one shorter), each group added in order from
// +0, then the groups' sums likewise in groups of kProjectionFanout, and so on until one sum is
// left (at least one round, so up to kProjectionFanout rows it is the plain sum in row order
// from +0, the official code's order). The GPU adds a group of rows in one thread block, and
// the last block of a tensor adds the groups' sums round after round.
inline constexpr int kProjectionFanout = 256;

// (((+0 + at(0)) + at(1)) + ...) + at(n - 1): one group of that order. at(i) returns RowSums.
// Eight at() ahead of their additions, so a GPU thread waits for memory once per eight (the
// additions keep their order).
template <typename At>
TERSE_HD inline RowSums projection_sum_in_order(const At& at, int64_t n) {
  constexpr int kAhead = 8;
  RowSums s;
  int64_t i = 0;
  for (; i + kAhead <= n; i += kAhead) {
    RowSums v[kAhead];
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int u = 0; u < kAhead; ++u) v[u] = at(i + u);
    for (const RowSums& x : v) s += x;
  }
  for (; i < n; ++i) s += at(i);
  return s;
}

// at(i) = x[i], for projection_sum_in_order over an array.
struct RowSumsAt {
  const RowSums* x;
  TERSE_HD RowSums operator()(int64_t i) const { return x[i]; }
};

inline RowSums projection_layer_sum(const std::vector<RowSums>& rows) {
  const auto count = static_cast<int64_t>(rows.size());
  const int64_t k = kProjectionFanout;
  // The first round reads the rows; the later ones work in place (node j reads nodes jk and
  // up, all past j, before writing j).
  std::vector<RowSums> node(static_cast<size_t>((count + k - 1) / k));
  for (int64_t j = 0; j < static_cast<int64_t>(node.size()); ++j) {
    node[static_cast<size_t>(j)] =
        projection_sum_in_order(RowSumsAt{rows.data() + j * k}, std::min(k, count - j * k));
  }
  for (int64_t m = static_cast<int64_t>(node.size()); m > 1; m = (m + k - 1) / k) {
    for (int64_t j = 0; j < (m + k - 1) / k; ++j) {
      node[static_cast<size_t>(j)] =
          projection_sum_in_order(RowSumsAt{node.data() + j * k}, std::min(k, m - j * k));
    }
  }
  return node.empty() ? RowSums{} : node[0];
}

// The choice for one tensor from its row sums (the CPU executor's; the GPU runs the same
// pieces). Fills coef (one per row) and returns the view.
inline ProjectionView choose_view(const std::vector<RowSums>& sums, int64_t numel, double delta,
                                  double eps, std::vector<float>& coef) {
  const auto rows = static_cast<int64_t>(sums.size());
  bool every = true;
  for (const auto& s : sums) every = projection_row_passes(s, numel, rows, delta, eps) && every;
  const RowSums layer = every || rows < 2 ? RowSums{} : projection_layer_sum(sums);
  const ProjectionView view = projection_view(every, layer, numel, rows, delta, eps);
  coef.resize(sums.size());
  for (size_t r = 0; r < sums.size(); ++r) {
    coef[r] = view == ProjectionView::kChannel ? projection_coefficient(sums[r], eps)
              : view == ProjectionView::kLayer ? projection_coefficient(layer, eps)
                                               : 0.0f;
  }
  return view;
}

}  // namespace terse

#pragma once

// The host half of an AdamP / SGDP step (projection_scalars.h), shared by the CPU and the CUDA
// executors so both pick the same view from the same sums: the per-row sums, the fixed pieces
// they are taken over, and the official _projection's choice.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "terse/kernels/cpu_chunks.h"
#include "terse/kernels/projected_task.h"

namespace terse {

// <g,theta>, |g|^2, |theta|^2, <theta,perturb> of one row (or piece of a row).
struct RowSums {
  double gp = 0, gg = 0, pp = 0, pd = 0;

  RowSums& operator+=(const RowSums& s) {
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

// The official _projection's choice for one tensor from its row sums: channel view first, then
// the layer view. Fills coef (one per row) and returns the view.
inline ProjectionView choose_view(const std::vector<RowSums>& sums, int64_t numel, double delta,
                                  double eps, std::vector<float>& coef) {
  const auto cosine = [eps](const RowSums& s) {
    // torch's F.cosine_similarity: each norm clamped below by eps.
    return std::fabs(s.gp) / (std::max(std::sqrt(s.gg), eps) * std::max(std::sqrt(s.pp), eps));
  };
  const auto coefficient = [eps](const RowSums& s) {
    const double norm = std::sqrt(s.pp) + eps;
    return static_cast<float>(s.pd / (norm * norm));
  };
  const auto rows = static_cast<int64_t>(sums.size());
  double worst = -INFINITY;
  for (const auto& s : sums) {
    const double c = cosine(s);
    if (std::isnan(c) || c > worst) worst = c;  // torch's max(): a NaN wins
  }
  if (worst < delta / std::sqrt(static_cast<double>(numel / rows))) {
    coef.resize(sums.size());
    for (size_t r = 0; r < sums.size(); ++r) coef[r] = coefficient(sums[r]);
    return ProjectionView::kChannel;
  }
  RowSums all;
  for (const auto& s : sums) all += s;
  if (rows > 1 && cosine(all) < delta / std::sqrt(static_cast<double>(numel))) {
    coef.assign(sums.size(), coefficient(all));
    return ProjectionView::kLayer;
  }
  // One row: the layer view is the channel view, already rejected.
  coef.assign(sums.size(), 0.0f);
  return ProjectionView::kNone;
}

}  // namespace terse

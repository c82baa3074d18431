// The order of AdamP / SGDP's per-row sums that projection_choice.h writes down (and that
// cuda_projected_apply implements on the GPU: per piece and lane a sum in element order, the
// lanes in a fixed tree, the pieces of a row in order) is the CPU executor's: written out here
// in plain C++, it gives cpu_projected_apply's sums bit for bit, for every Rule and dtype. Built
// with -ffp-contract=off (CMakeLists.txt), as the executor is.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "projected_cases.h"
#include "terse/kernels/adamp_rule.h"
#include "terse/kernels/cpu_projected.h"
#include "terse/kernels/projection_choice.h"
#include "terse/kernels/sgdp_rule.h"

namespace terse {
namespace {

using test::HostTensor;
using test::ProjCase;

// The per-row sums of one step of `rule` over t (t's buffers as they are before the step), in
// the order projection_choice.h documents; `lanes` = 1 sums each piece in plain element order
// instead (a different order, to show the data is sensitive to it).
template <typename Rule>
std::vector<RowSums> documented_sums(const Rule& rule, const HostTensor& t, int lanes = 8) {
  const int64_t len = t.n / t.rows;
  const int64_t pieces = projection_pieces_per_row(len);
  std::vector<RowSums> out(static_cast<size_t>(t.rows));
  for (int64_t r = 0; r < t.rows; ++r) {
    RowSums row;
    for (int64_t j = 0; j < pieces; ++j) {
      const int64_t begin = r * len + j * kCpuChunkElements;
      const int64_t end = std::min((r + 1) * len, begin + kCpuChunkElements);
      RowSums lane[8];
      for (int64_t i = begin; i < end; ++i) {
        float x0 = t.s0[static_cast<size_t>(i)];
        float x1 = Rule::kNumStates > 1 ? t.s1[static_cast<size_t>(i)] : 0.0f;
        const float gv = t.get(t.g, i), pv = t.get(t.p, i);
        const double d = rule.update(gv, x0, x1);
        RowSums& l = lane[(i - begin) % lanes];
        l.gp += static_cast<double>(gv) * pv;
        l.gg += static_cast<double>(gv) * gv;
        l.pp += static_cast<double>(pv) * pv;
        l.pd += static_cast<double>(pv) * d;
      }
      const auto tree = [&](double RowSums::*f) {
        return ((lane[0].*f + lane[1].*f) + (lane[2].*f + lane[3].*f)) +
               ((lane[4].*f + lane[5].*f) + (lane[6].*f + lane[7].*f));
      };
      row +=
          RowSums{tree(&RowSums::gp), tree(&RowSums::gg), tree(&RowSums::pp), tree(&RowSums::pd)};
    }
    out[static_cast<size_t>(r)] = row;
  }
  return out;
}

template <typename Rule, typename MakeRule>
void check_order(const MakeRule& make_rule, DType dtype) {
  std::vector<HostTensor> ts;
  uint64_t seed = 1;
  const std::vector<ProjCase> cases = test::proj_cases();  // by value: kept for the loop below
  for (const ProjCase& c : cases) ts.emplace_back(c, dtype, seed++);
  bool order_shows = false;  // some f32 row's bits depend on the order
  for (int64_t step = 1; step <= 3; ++step) {
    const Rule rule = make_rule(step);
    std::vector<ProjectedTask<Rule>> tasks;
    std::vector<std::vector<RowSums>> expect(ts.size());
    for (size_t i = 0; i < ts.size(); ++i) {
      ts[i].next_grad();
      if (ts[i].rows > 0 && ts[i].n > 0) {
        expect[i] = documented_sums(rule, ts[i]);
        order_shows = order_shows || !test::same_bits(expect[i], documented_sums(rule, ts[i], 1));
      }
      tasks.push_back(ts[i].task(rule));
    }
    std::vector<std::vector<RowSums>> got;
    const std::vector<ProjectionView> views = cpu_projected_apply(tasks, &got);
    ASSERT_EQ(got.size(), ts.size());
    for (size_t i = 0; i < ts.size(); ++i) {
      SCOPED_TRACE(test::shape_str(ts[i].shape) + " tensor " + std::to_string(i) + " step " +
                   std::to_string(step) + " " + dtype_name(dtype));
      EXPECT_TRUE(test::same_bits(got[i], expect[i])) << "the CPU's row sums differ";
      const auto& want = cases[i].expect;
      if (want) {
        EXPECT_EQ(static_cast<int>(views[i]), static_cast<int>(*want));
      }
    }
  }
  if (dtype == DType::kF32) {
    EXPECT_TRUE(order_shows) << "no row is sensitive to the order";
  }
}

template <typename Rule, typename MakeRule>
void check_all_dtypes(const MakeRule& make_rule) {
  for (const DType dt : {DType::kF32, DType::kBF16, DType::kF16}) {
    check_order<Rule>(make_rule, dt);
  }
}

TEST(ProjectedOrder, AdamPRowSumsFollowTheDocumentedOrder) {
  check_all_dtypes<AdamPRule<false>>([](int64_t t) {
    return AdamPRule<false>::for_step(0.01, 0.9, 0.999, 1e-8, 0.1, 0.1, 0.1, t);
  });
  check_all_dtypes<AdamPRule<true>>([](int64_t t) {
    return AdamPRule<true>::for_step(0.01, 0.9, 0.999, 1e-8, 0.1, 0.1, 0.1, t);
  });
}

TEST(ProjectedOrder, SgdPRowSumsFollowTheDocumentedOrder) {
  check_all_dtypes<SgdPRule<false>>(
      [](int64_t t) { return SgdPRule<false>::for_step(0.1, 0.9, 0.1, 1e-4, 0.1, 0.1, 1e-8, t); });
  check_all_dtypes<SgdPRule<true>>(
      [](int64_t t) { return SgdPRule<true>::for_step(0.1, 0.9, 0, 1e-4, 0.1, 0.1, 1e-8, t); });
}

// The layer's sums in the rounds projection_choice.h documents, written out plainly: groups of
// 256 sums, each in order from +0, round after round (at least one) until one is left.
RowSums documented_layer_sum(std::vector<RowSums> level) {
  do {
    std::vector<RowSums> next;
    for (size_t b = 0; b < level.size(); b += 256) {
      RowSums s;
      for (size_t j = b; j < std::min(level.size(), b + 256); ++j) s += level[j];
      next.push_back(s);
    }
    level = next;
  } while (level.size() > 1);
  return level[0];
}

// projection_layer_sum (the CPU's, which the GPU's rounds follow) is the documented order: the
// plain row order up to kProjectionFanout rows (the official code's), not past them.
TEST(ProjectedOrder, LayerSumFollowsTheDocumentedRounds) {
  std::mt19937_64 rng(7);
  const auto wide = [&rng] {
    const int e = std::uniform_int_distribution<int>(-40, 40)(rng);
    return std::ldexp(std::uniform_real_distribution<double>(-1, 1)(rng), e);
  };
  static_assert(kProjectionFanout == 256, "documented_layer_sum assumes groups of 256");
  bool order_shows = false;
  for (const int64_t n : {1, 2, 255, 256, 257, 511, 513, 65536, 65537, 70001, 2 * 65536 + 3}) {
    SCOPED_TRACE(n);
    std::vector<RowSums> rows(static_cast<size_t>(n));
    for (RowSums& r : rows) r = RowSums{wide(), wide() * wide(), wide() * wide(), wide()};
    const RowSums got = projection_layer_sum(rows);
    EXPECT_TRUE(test::same_bits({got}, {documented_layer_sum(rows)}));
    RowSums plain;
    for (const RowSums& r : rows) plain += r;
    if (n <= kProjectionFanout) {
      EXPECT_TRUE(test::same_bits({got}, {plain})) << "the official row order up to 256 rows";
    } else {
      order_shows = order_shows || !test::same_bits({got}, {plain});
    }
  }
  EXPECT_TRUE(order_shows) << "no sum depends on the order: the test cannot tell the orders apart";
}

// The choice uses that order for the layer view: a tensor whose rows fail the channel test and
// whose layer passes gets projection_coefficient of projection_layer_sum, on every row.
TEST(ProjectedOrder, ChooseViewTakesTheLayerSumInItsOrder) {
  std::vector<RowSums> rows(70000, RowSums{1e-30, 1, 1, 0.25});
  rows[0] = RowSums{1, 1, 1, 3};  // cosine 1: no channel view
  std::vector<float> coef;
  const ProjectionView v = choose_view(rows, 3 * 70000, 0.1, 1e-8, coef);
  ASSERT_EQ(static_cast<int>(v), static_cast<int>(ProjectionView::kLayer));
  const float want = projection_coefficient(projection_layer_sum(rows), 1e-8);
  ASSERT_EQ(coef.size(), rows.size());
  EXPECT_EQ(coef.front(), want);
  EXPECT_EQ(coef.back(), want);
  // One row: no layer view, whatever the layer's cosine.
  const std::vector<RowSums> one{RowSums{1, 1, 1, 3}};
  EXPECT_EQ(static_cast<int>(choose_view(one, 5, 0.1, 1e-8, coef)),
            static_cast<int>(ProjectionView::kNone));
  EXPECT_EQ(coef, std::vector<float>{0.0f});
  // A NaN row fails the channel test, as the official max() makes it.
  std::vector<RowSums> nan_row(3, RowSums{0, 1, 1, 0});
  nan_row[1].gp = NAN;
  EXPECT_NE(static_cast<int>(choose_view(nan_row, 6, 0.1, 1e-8, coef)),
            static_cast<int>(ProjectionView::kChannel));
}

TEST(ProjectedOrder, PiecesPerRow) {
  EXPECT_EQ(projection_pieces_per_row(1), 1);
  EXPECT_EQ(projection_pieces_per_row(kCpuChunkElements - 1), 1);
  EXPECT_EQ(projection_pieces_per_row(kCpuChunkElements), 1);
  EXPECT_EQ(projection_pieces_per_row(kCpuChunkElements + 1), 2);
  EXPECT_EQ(projection_pieces_per_row(2 * kCpuChunkElements + 3), 3);
}

}  // namespace
}  // namespace terse

// adamp: options, hand-computed projected steps in both views, the official step in double on
// random tensors, state (spec optimizers.md §5).

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "optim_test_util.h"
#include "projection_reference.h"
#include "terse/kernels/adamp_rule.h"
#include "terse/kernels/cpu_projected.h"
#include "terse/kernels/cpu_threads.h"
#include "terse/optim/optimizer.h"

namespace terse {
namespace {

using test::AdamPRef;
using test::Buffers;
using test::expect_invalid;
using test::GradKind;
using test::RefView;
using test::Shaped;
using test::Tensor;

TEST(AdamP, DefaultsAreTheOfficialOnes) {
  Buffers b{{1.0f}, {1.0f}};
  auto opt = make_optimizer("adamp", {b.param()});
  const OptionMap o = opt->options();
  EXPECT_EQ(o.at("lr"), "0.001");
  EXPECT_EQ(o.at("betas"), "0.9/0.999");
  EXPECT_EQ(o.at("eps"), "1e-08");
  EXPECT_EQ(o.at("weight_decay"), "0");
  EXPECT_EQ(o.at("delta"), "0.1");
  EXPECT_EQ(o.at("wd_ratio"), "0.1");
  EXPECT_EQ(o.at("nesterov"), "false");
  EXPECT_EQ(o.size(), 7u);
  EXPECT_STREQ(opt->name(), "adamp");
}

TEST(AdamP, BadOptionsNameTheOptionAndValue) {
  expect_invalid("adamp:delta=-0.1", {"delta must be a finite number >= 0", "-0.1"});
  expect_invalid("adamp:delta=inf", {"delta must be", "inf"});
  expect_invalid("adamp:delta=nan", {"delta must be", "nan"});
  expect_invalid("adamp:wd_ratio=1.5", {"wd_ratio must be in [0, 1]", "1.5"});
  expect_invalid("adamp:wd_ratio=-0.1", {"wd_ratio must be in [0, 1]", "-0.1"});
  expect_invalid("adamp:wd_ratio=nan", {"wd_ratio", "nan"});
  expect_invalid("adamp:eps=0", {"eps must be a finite number > 0", "got 0"});
  expect_invalid("adamp:betas=1/0.999", {"betas must each be in [0, 1)", "1/0.999"});
  expect_invalid("adamp:lr=-1", {"lr must be", "-1"});
  expect_invalid("adamp:weight_decay=-0.1", {"weight_decay must be", "-0.1"});
  expect_invalid("adamp:nesterov=yes", {"'nesterov'", "'yes'"});
  expect_invalid("adamp:momentum=0.9", {"unknown option 'momentum'", "delta, wd_ratio"});
}

// theta = [[1, 2], [2, -1]], g = [[2, -1], [1, 2]]: every row of g is orthogonal to theta's
// (cos 0), so the channel view projects. Step 1: m / den = 0.1 sign(g) (up to eps), step size
// lr / bc1 = 1; row 0: p = [0.1, -0.1], <theta, p> / |theta|^2 = -0.02, p -> [0.12, -0.06];
// row 1: p = [0.1, 0.1], coefficient 0.02, p -> [0.06, 0.12]. The decay is
// 1 - lr * wd * wd_ratio = 1 - 0.1 * 0.5 * 0.1.
TEST(AdamP, OrthogonalRowsProjectInTheChannelViewWithWdRatio) {
  Shaped w{{2, 2}, {1, 2, 2, -1}, {2, -1, 1, 2}};
  auto opt = make_optimizer("adamp:lr=0.1,weight_decay=0.5", {w.param()});
  opt->step();
  const float d = 0.995f;
  EXPECT_NEAR(w.value[0], 1 * d - 0.12f, 1e-6);
  EXPECT_NEAR(w.value[1], 2 * d + 0.06f, 1e-6);
  EXPECT_NEAR(w.value[2], 2 * d - 0.06f, 1e-6);
  EXPECT_NEAR(w.value[3], -1 * d - 0.12f, 1e-6);
  // delta = 0 never projects: the plain AdamW-like step with the full decay 1 - 0.1 * 0.5.
  Shaped u{{2, 2}, {1, 2, 2, -1}, {2, -1, 1, 2}};
  auto plain = make_optimizer("adamp:lr=0.1,weight_decay=0.5,delta=0", {u.param()});
  plain->step();
  EXPECT_NEAR(u.value[0], 1 * 0.95f - 0.1f, 1e-6);
  EXPECT_NEAR(u.value[1], 2 * 0.95f + 0.1f, 1e-6);
}

// Row 0 of g is parallel to theta's (cos 1: the channel view fails), row 1 orthogonal, and
// the whole g nearly orthogonal to theta (cos 0.1 / (sqrt 2 * sqrt 25.01) = 0.014 < 0.1 / 2):
// the layer view projects with ONE coefficient, <theta, p> / |theta|^2 = 0.1 / 2.
TEST(AdamP, LayerViewProjectsWhenOnlyTheWholeTensorIsOrthogonal) {
  Shaped w{{2, 2}, {1, 0, 0, 1}, {0.1f, 0, 5, 0}};
  auto opt = make_optimizer("adamp:lr=0.1,weight_decay=0.5", {w.param()});
  opt->step();
  const float d = 0.995f;  // wd_ratio applies in the layer view too
  EXPECT_NEAR(w.value[0], d - 0.05f, 1e-6);
  EXPECT_NEAR(w.value[1], 0.0f, 1e-6);
  EXPECT_NEAR(w.value[2], -0.1f, 1e-6);
  EXPECT_NEAR(w.value[3], d + 0.05f, 1e-6);
}

TEST(AdamP, ParallelGradientIsNotProjected) {
  Shaped w{{2, 2}, {1, 2, 2, -1}, {1, 2, 2, -1}};
  auto opt = make_optimizer("adamp:lr=0.1,weight_decay=0.5", {w.param()});
  opt->step();
  for (size_t e = 0; e < 4; ++e) {
    const float sign = w.grad[e] > 0 ? 1.0f : -1.0f;
    EXPECT_NEAR(w.value[e], w.grad[e] * 0.95f - 0.1f * sign, 1e-6) << e;  // full decay
  }
}

TEST(AdamP, OneDimensionalAndShapelessParamsAreNeverProjected) {
  // The same numbers as the channel-view test, as a 1-D tensor, a [4] shape and no shape.
  Shaped flat{{4}, {1, 2, 2, -1}, {2, -1, 1, 2}};
  Shaped none{{}, {1, 2, 2, -1}, {2, -1, 1, 2}};
  auto opt = make_optimizer("adamp:lr=0.1,weight_decay=0.5", {flat.param(), none.param()});
  opt->step();
  const std::vector<float> expect = {0.95f - 0.1f, 1.9f + 0.1f, 1.9f - 0.1f, -0.95f - 0.1f};
  for (size_t e = 0; e < 4; ++e) {
    EXPECT_NEAR(flat.value[e], expect[e], 1e-6) << e;
    EXPECT_NEAR(none.value[e], expect[e], 1e-6) << e;
  }
  // A [1, 4] tensor is 2-D: its one row is the whole tensor, orthogonal to g, so it is
  // projected (a no-op here, <theta, m / den> = 0) and decays by 1 - lr * wd * wd_ratio.
  Shaped row{{1, 4}, {1, 2, 2, -1}, {2, -1, 1, 2}};
  auto opt2 = make_optimizer("adamp:lr=0.1,weight_decay=0.5", {row.param()});
  opt2->step();
  const std::vector<float> projected = {0.995f - 0.1f, 1.99f + 0.1f, 1.99f - 0.1f, -0.995f - 0.1f};
  for (size_t e = 0; e < 4; ++e) EXPECT_NEAR(row.value[e], projected[e], 1e-6) << e;
}

// Runs one AdamP step on [2, 8] tensors (theta, g) with `delta`; returns the views.
std::vector<ProjectionView> views_for(std::vector<std::vector<float>> p,
                                      std::vector<std::vector<float>> g, double delta) {
  const auto rule = AdamPRule<false>::for_step(0.1, 0.9, 0.999, 1e-8, 0.5, delta, 0.1, 1);
  std::vector<std::vector<float>> m(p.size(), std::vector<float>(16)), v = m;
  std::vector<CpuProjectedTask<AdamPRule<false>>> tasks(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    tasks[i].rule = rule;
    tasks[i].param = TensorView::of(p[i].data(), 16);
    tasks[i].grad = TensorView::of(g[i].data(), 16);
    tasks[i].states[0] = m[i].data();
    tasks[i].states[1] = v[i].data();
    tasks[i].rows = 2;
  }
  return cpu_projected_apply(tasks);
}

TEST(AdamP, ThresholdsAreDeltaOverTheSquareRootOfTheViewsRowLength) {
  using V = ProjectionView;
  std::vector<float> e1(16), e2(16);
  e1[0] = e1[8] = 1;  // theta: e_1 in both rows
  e2[1] = e2[9] = 1;
  // Both rows of g at cos 0.3 to theta's: the channel view projects iff 0.3 < delta / sqrt(8).
  std::vector<float> g03(16);
  g03[0] = g03[8] = 0.3f;
  g03[1] = g03[9] = std::sqrt(1 - 0.09f);
  const double c = 0.3 * std::sqrt(8.0);
  EXPECT_EQ(views_for({e1}, {g03}, c * 1.01), std::vector<V>{V::kChannel});
  EXPECT_EQ(views_for({e1}, {g03}, c * 0.99), std::vector<V>{V::kNone});  // layer: 0.3 vs d / 4
  // Row 0 parallel (cos 1), row 1 orthogonal with 10x the norm: the layer cosine is
  // 1 / (sqrt 2 * sqrt 101), projected iff below delta / sqrt(16).
  std::vector<float> gl(16);
  gl[0] = 1;
  gl[9] = 10;
  const double cl = 4 / (std::sqrt(2.0) * std::sqrt(101.0));
  EXPECT_EQ(views_for({e1}, {gl}, cl * 1.01), std::vector<V>{V::kLayer});
  EXPECT_EQ(views_for({e1}, {gl}, cl * 0.99), std::vector<V>{V::kNone});
  // A zero gradient has cosine 0 (torch clamps the norms by eps), so it projects; so does a
  // zero theta. delta = 0 never projects.
  EXPECT_EQ(views_for({e1, std::vector<float>(16)}, {std::vector<float>(16), e2}, 0.1),
            (std::vector<V>{V::kChannel, V::kChannel}));
  EXPECT_EQ(views_for({e1}, {e2}, 0.0), std::vector<V>{V::kNone});
}

TEST(AdamP, KernelReportsTheView) {
  const auto rule = AdamPRule<false>::for_step(0.1, 0.9, 0.999, 1e-8, 0.5, 0.1, 0.1, 1);
  std::vector<std::vector<float>> p = {{1, 2, 2, -1}, {1, 0, 0, 1}, {1, 2, 2, -1}, {1, 2, 2, -1}};
  std::vector<std::vector<float>> g = {
      {2, -1, 1, 2}, {0.1f, 0, 5, 0}, {1, 2, 2, -1}, {2, -1, 1, 2}};
  std::vector<std::vector<float>> m(4, std::vector<float>(4)), v = m;
  std::vector<CpuProjectedTask<AdamPRule<false>>> tasks(4);
  for (size_t i = 0; i < 4; ++i) {
    tasks[i].rule = rule;
    tasks[i].param = TensorView::of(p[i].data(), 4);
    tasks[i].grad = TensorView::of(g[i].data(), 4);
    tasks[i].states[0] = m[i].data();
    tasks[i].states[1] = v[i].data();
    tasks[i].rows = i == 3 ? 0 : 2;
  }
  const auto views = cpu_projected_apply(tasks);
  EXPECT_EQ(views, (std::vector<ProjectionView>{ProjectionView::kChannel, ProjectionView::kLayer,
                                                ProjectionView::kNone, ProjectionView::kNone}));
  tasks[0].rows = 3;  // 4 elements in 3 rows
  EXPECT_THROW(cpu_projected_apply(tasks), InvalidArgument);
}

// The official step in double against terse in f32, over random tensors whose gradients make
// the channel view, the layer view or neither project, including rows longer than a chunk.
void expect_matches_official(bool nesterov) {
  std::mt19937 rng(nesterov ? 11 : 7);
  std::vector<Tensor> ts;
  for (const auto& shape : std::vector<std::vector<int64_t>>{
           {24}, {6, 10}, {4, 2, 3, 3}, {2, 70000}, {300, 40}, {1, 50}}) {
    ts.emplace_back(shape, rng);
  }
  AdamPRef ref;
  ref.lr = 0.01;
  ref.weight_decay = 0.1;
  ref.nesterov = nesterov;
  std::vector<Param> params;
  for (auto& t : ts) params.push_back(t.param());
  auto opt = make_optimizer(
      std::string("adamp:lr=0.01,weight_decay=0.1,nesterov=") + (nesterov ? "true" : "false"),
      params);
  const GradKind kinds[] = {GradKind::kRandom, GradKind::kRowOrthogonal,
                            GradKind::kLayerOrthogonal};
  int seen[3] = {0, 0, 0};
  for (int64_t step = 1; step <= 9; ++step) {
    for (auto& t : ts) {
      GradKind k = kinds[(step - 1) % 3];
      if (t.shape.size() < 2 || t.shape[0] == 1) k = GradKind::kRowOrthogonal;
      test::make_grad(t, k, rng);
      ++seen[static_cast<int>(ref.step(t, step))];
    }
    opt->step();
    for (size_t i = 0; i < ts.size(); ++i) {
      EXPECT_LE(test::max_relative_error(ts[i]), 1e-5) << "tensor " << i << " step " << step;
    }
  }
  EXPECT_GT(seen[static_cast<int>(RefView::kChannel)], 6);
  EXPECT_GT(seen[static_cast<int>(RefView::kLayer)], 6);
  EXPECT_GT(seen[static_cast<int>(RefView::kNone)], 6);
}

TEST(AdamP, MatchesTheOfficialStepInDouble) { expect_matches_official(false); }
TEST(AdamP, NesterovMatchesTheOfficialStepInDouble) { expect_matches_official(true); }

// Groups with different Rules (nesterov or not) each get their own hyper-parameters.
TEST(AdamP, GroupsMayDifferInNesterovAndDelta) {
  std::mt19937 rng(13);
  Tensor a({6, 10}, rng), b({4, 2, 3, 3}, rng);
  Tensor a1 = a, b1 = b;
  std::vector<ParamGroup> groups(2);
  groups[0].params = {a.param()};
  groups[0].overrides = {{"nesterov", "true"}};
  groups[1].params = {b.param()};
  groups[1].overrides = {{"delta", "0"}};
  auto both = make_optimizer(OptimizerSpec{"adamp", {{"lr", "0.01"}, {"weight_decay", "0.1"}}},
                             std::move(groups));
  auto alone_a = make_optimizer("adamp:lr=0.01,weight_decay=0.1,nesterov=true", {a1.param()});
  auto alone_b = make_optimizer("adamp:lr=0.01,weight_decay=0.1,delta=0", {b1.param()});
  for (int s = 0; s < 3; ++s) {
    test::make_grad(a, GradKind::kRowOrthogonal, rng);
    test::make_grad(b, GradKind::kRowOrthogonal, rng);
    a1.grad = a.grad;
    b1.grad = b.grad;
    both->step();
    alone_a->step();
    alone_b->step();
  }
  EXPECT_EQ(a.value, a1.value);
  EXPECT_EQ(b.value, b1.value);
  EXPECT_EQ(both->options(0).at("nesterov"), "true");
  EXPECT_EQ(both->options(1).at("delta"), "0");
}

TEST(AdamP, ResultDoesNotDependOnTheThreadCount) {
  std::vector<std::vector<float>> results;
  for (int threads : {1, 3}) {
    set_cpu_threads(threads);
    std::mt19937 rng(3);
    std::vector<Tensor> ts;
    ts.emplace_back(std::vector<int64_t>{3, 70000}, rng);
    ts.emplace_back(std::vector<int64_t>{500, 300}, rng);
    auto opt = make_optimizer("adamp:lr=0.01,weight_decay=0.1", {ts[0].param(), ts[1].param()});
    for (int s = 0; s < 3; ++s) {
      for (auto& t : ts)
        test::make_grad(t, s == 1 ? GradKind::kRowOrthogonal : GradKind::kRandom, rng);
      opt->step();
    }
    results.push_back(ts[0].value);
    results.back().insert(results.back().end(), ts[1].value.begin(), ts[1].value.end());
  }
  set_cpu_threads(0);
  EXPECT_EQ(results[0], results[1]);
}

TEST(AdamP, SixteenBitParamsFollowTheF32Step) {
  std::vector<BFloat16> value(4), grad(4);
  const float p[] = {1, 2, 2, -1}, g[] = {2, -1, 1, 2};
  for (int e = 0; e < 4; ++e) {
    value[e] = to_bfloat16(p[e]);
    grad[e] = to_bfloat16(g[e]);
  }
  Param param{TensorView::of(value.data(), 4), TensorView::of(grad.data(), 4), {2, 2}, ""};
  auto opt = make_optimizer("adamp:lr=0.1,weight_decay=0.5", {param});
  opt->step();
  EXPECT_NEAR(to_float(value[0]), 0.995f - 0.12f, 4e-3);  // projected, as in f32
  EXPECT_NEAR(to_float(value[3]), -0.995f - 0.12f, 8e-3);
}

TEST(AdamP, StateRoundTripAndBytes) {
  std::mt19937 rng(5);
  Tensor a({6, 10}, rng), b1({24}, rng);
  Tensor copy = a, copy1 = b1;
  auto opt = make_optimizer("adamp:lr=0.01,weight_decay=0.1", {a.param("w"), b1.param("b")});
  EXPECT_EQ(opt->state_bytes(), 0u);
  test::make_grad(a, GradKind::kRowOrthogonal, rng);
  test::make_grad(b1, GradKind::kRandom, rng);
  opt->step();
  EXPECT_EQ(opt->state_bytes(), 2 * (60 + 24) * sizeof(float));  // exp_avg, exp_avg_sq
  const StateDict sd = opt->state_dict();
  EXPECT_EQ(sd.tensor("state.0.exp_avg").numel(), 60);
  EXPECT_EQ(sd.tensor("state.1.exp_avg_sq").numel(), 24);
  EXPECT_EQ(sd.tensors.size(), 4u);
  copy.value = a.value;
  copy1.value = b1.value;
  auto resumed =
      make_optimizer("adamp:lr=0.01,weight_decay=0.1", {copy.param("w"), copy1.param("b")});
  resumed->load_state_dict(sd);
  EXPECT_EQ(resumed->state_dict(), sd);
  for (int s = 0; s < 3; ++s) {
    test::make_grad(a, s == 0 ? GradKind::kLayerOrthogonal : GradKind::kRandom, rng);
    test::make_grad(b1, GradKind::kRandom, rng);
    copy.grad = a.grad;
    copy1.grad = b1.grad;
    opt->step();
    resumed->step();
  }
  EXPECT_EQ(a.value, copy.value);
  EXPECT_EQ(b1.value, copy1.value);
  EXPECT_EQ(opt->state_dict(), resumed->state_dict());
  auto sgdp = make_optimizer("sgdp:lr=0.1", {copy.param("w"), copy1.param("b")});
  EXPECT_THROW(sgdp->load_state_dict(sd), InvalidArgument);
}

}  // namespace
}  // namespace terse

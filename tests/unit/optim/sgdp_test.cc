// sgdp: options, hand-computed projected steps, the official step in double on random tensors,
// state (spec optimizers.md §5).

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "optim_test_util.h"
#include "projection_reference.h"
#include "terse/optim/optimizer.h"

namespace terse {
namespace {

using test::Buffers;
using test::expect_invalid;
using test::GradKind;
using test::RefView;
using test::SgdPRef;
using test::Shaped;
using test::Tensor;

TEST(SgdP, DefaultsAreTheOfficialOnesAndLrIsRequired) {
  Buffers b{{1.0f}, {1.0f}};
  auto opt = make_optimizer("sgdp:lr=0.1", {b.param()});
  const OptionMap o = opt->options();
  EXPECT_EQ(o.at("lr"), "0.1");
  EXPECT_EQ(o.at("momentum"), "0");
  EXPECT_EQ(o.at("dampening"), "0");
  EXPECT_EQ(o.at("weight_decay"), "0");
  EXPECT_EQ(o.at("nesterov"), "false");
  EXPECT_EQ(o.at("eps"), "1e-08");
  EXPECT_EQ(o.at("delta"), "0.1");
  EXPECT_EQ(o.at("wd_ratio"), "0.1");
  EXPECT_EQ(o.size(), 8u);
  EXPECT_STREQ(opt->name(), "sgdp");
  expect_invalid("sgdp", {"lr is required", "sgdp:lr=0.1"});
  expect_invalid("sgdp:momentum=0.9", {"lr is required"});
  // A group override satisfies it.
  std::vector<ParamGroup> groups(1);
  groups[0].params = {b.param()};
  groups[0].overrides["lr"] = "0.2";
  EXPECT_EQ(make_optimizer(OptimizerSpec{"sgdp", {}}, groups)->lr(), 0.2);
}

TEST(SgdP, BadOptionsNameTheOptionAndValue) {
  expect_invalid("sgdp:lr=0.1,momentum=1", {"momentum must be in [0, 1)", "got 1"});
  expect_invalid("sgdp:lr=0.1,momentum=-0.5", {"momentum must be in [0, 1)", "-0.5"});
  expect_invalid("sgdp:lr=0.1,dampening=1.5", {"dampening must be in [0, 1]", "1.5"});
  expect_invalid("sgdp:lr=0.1,delta=-1", {"delta must be a finite number >= 0", "-1"});
  expect_invalid("sgdp:lr=0.1,wd_ratio=2", {"wd_ratio must be in [0, 1]", "2"});
  expect_invalid("sgdp:lr=0.1,eps=-1e-8", {"eps must be a finite number > 0", "-1e-08"});
  expect_invalid("sgdp:lr=-0.1", {"lr must be", "-0.1"});
  expect_invalid("sgdp:lr=0.1,weight_decay=-1", {"weight_decay must be", "-1"});
  expect_invalid("sgdp:lr=0.1,betas=0.9/0.99", {"unknown option 'betas'", "momentum, dampening"});
}

// theta = [1, 0] as a [1, 2] tensor, lr 0.1, momentum 0.5, wd 0.1. Step 1, g = [1, 0]
// (parallel: no projection): b = g, decay 1 - lr * wd / (1 - momentum) = 0.98, theta = 0.88.
// Step 2, g = [0, 1] (orthogonal: projected): b = [0.5, 1]; its theta component goes, so
// d = [0, 1]; decay 1 - 0.1 * 0.1 * 0.1 / 0.5 = 0.998; theta = [0.88 * 0.998, -0.1].
TEST(SgdP, MomentumIsProjectedOffThetaWithWdRatioOverOneMinusMomentum) {
  Shaped w{{1, 2}, {1, 0}, {1, 0}};
  auto opt = make_optimizer("sgdp:lr=0.1,momentum=0.5,weight_decay=0.1", {w.param()});
  opt->step();
  EXPECT_NEAR(w.value[0], 0.88f, 1e-6);
  EXPECT_EQ(w.value[1], 0.0f);
  w.grad = {0, 1};
  opt->step();
  EXPECT_NEAR(w.value[0], 0.88f * 0.998f, 1e-6);
  EXPECT_NEAR(w.value[1], -0.1f, 1e-6);
  // The same as a 1-D tensor: never projected, full decay, d = b = [0.5, 1].
  Buffers flat{{1, 0}, {1, 0}};
  auto opt1 = make_optimizer("sgdp:lr=0.1,momentum=0.5,weight_decay=0.1", {flat.param()});
  opt1->step();
  flat.grad = {0, 1};
  opt1->step();
  EXPECT_NEAR(flat.value[0], 0.88f * 0.98f - 0.05f, 1e-6);
  EXPECT_NEAR(flat.value[1], -0.1f, 1e-6);
}

// No first-step special case: b = (1 - dampening) g from the start (torch's SGD sets b = g).
// Nesterov: d = g + momentum * b.
TEST(SgdP, DampeningAppliesFromTheFirstStepAndNesterovAddsTheGradient) {
  Buffers b{{1.0f}, {1.0f}};
  auto opt = make_optimizer("sgdp:lr=0.1,momentum=0.9,dampening=0.5", {b.param()});
  opt->step();
  EXPECT_FLOAT_EQ(b.value[0], 1.0f - 0.1f * 0.5f);
  Buffers n{{1.0f}, {1.0f}};
  auto nes = make_optimizer("sgdp:lr=0.1,momentum=0.9,nesterov=true", {n.param()});
  nes->step();
  EXPECT_FLOAT_EQ(n.value[0], 1.0f - 0.1f * (1.0f + 0.9f));
}

void expect_matches_official(bool nesterov, double dampening) {
  std::mt19937 rng(nesterov ? 21 : 23);
  std::vector<Tensor> ts;
  for (const auto& shape : std::vector<std::vector<int64_t>>{
           {24}, {6, 10}, {4, 2, 3, 3}, {2, 70000}, {300, 40}, {1, 50}}) {
    ts.emplace_back(shape, rng);
  }
  SgdPRef ref;
  ref.lr = 0.05;
  ref.momentum = 0.9;
  ref.dampening = dampening;
  ref.weight_decay = 0.01;
  ref.nesterov = nesterov;
  std::vector<Param> params;
  for (auto& t : ts) params.push_back(t.param());
  auto opt = make_optimizer(
      "sgdp:lr=0.05,momentum=0.9,weight_decay=0.01,dampening=" + std::to_string(dampening) +
          ",nesterov=" + (nesterov ? "true" : "false"),
      params);
  const GradKind kinds[] = {GradKind::kRandom, GradKind::kRowOrthogonal,
                            GradKind::kLayerOrthogonal};
  int seen[3] = {0, 0, 0};
  for (int64_t step = 1; step <= 9; ++step) {
    for (auto& t : ts) {
      GradKind k = kinds[(step - 1) % 3];
      if (t.shape.size() < 2 || t.shape[0] == 1) k = GradKind::kRowOrthogonal;
      test::make_grad(t, k, rng);
      ++seen[static_cast<int>(ref.step(t))];
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

TEST(SgdP, MatchesTheOfficialStepInDouble) { expect_matches_official(false, 0.0); }
TEST(SgdP, NesterovMatchesTheOfficialStepInDouble) { expect_matches_official(true, 0.0); }
TEST(SgdP, DampenedMatchesTheOfficialStepInDouble) { expect_matches_official(false, 0.3); }

TEST(SgdP, StateRoundTripAndBytes) {
  std::mt19937 rng(9);
  Tensor a({4, 2, 3, 3}, rng), copy = a;
  // The official code keeps the buffer even with momentum 0.
  auto opt = make_optimizer("sgdp:lr=0.05,weight_decay=0.01", {a.param("w")});
  EXPECT_EQ(opt->state_bytes(), 0u);
  test::make_grad(a, GradKind::kRowOrthogonal, rng);
  opt->step();
  EXPECT_EQ(opt->state_bytes(), 72 * sizeof(float));
  const StateDict sd = opt->state_dict();
  EXPECT_EQ(sd.tensor("state.0.momentum").numel(), 72);
  EXPECT_EQ(sd.tensors.size(), 1u);
  copy.value = a.value;
  auto resumed = make_optimizer("sgdp:lr=0.05,weight_decay=0.01", {copy.param("w")});
  resumed->load_state_dict(sd);
  EXPECT_EQ(resumed->state_dict(), sd);
  for (int s = 0; s < 3; ++s) {
    test::make_grad(a, s == 1 ? GradKind::kLayerOrthogonal : GradKind::kRandom, rng);
    copy.grad = a.grad;
    opt->step();
    resumed->step();
  }
  EXPECT_EQ(a.value, copy.value);
  EXPECT_EQ(opt->state_dict(), resumed->state_dict());
}

}  // namespace
}  // namespace terse

// diffgrad: options, hand-computed first steps, the friction from the previous gradient, state
// (spec optimizers.md §11).

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "optim_test_util.h"
#include "terse/kernels/diffgrad_rule.h"
#include "terse/optim/optimizer.h"

namespace terse {
namespace {

using test::Buffers;
using test::expect_invalid;
using test::state_floats;

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

TEST(DiffGrad, DefaultsAreTheOfficialOnes) {
  Buffers b{{1.0f}, {1.0f}};
  auto opt = make_optimizer("diffgrad", {b.param()});
  const OptionMap o = opt->options();
  EXPECT_EQ(o.at("lr"), "0.001");
  EXPECT_EQ(o.at("betas"), "0.9/0.999");
  EXPECT_EQ(o.at("eps"), "1e-08");
  EXPECT_EQ(o.at("weight_decay"), "0");
  EXPECT_EQ(o.size(), 4u);
  EXPECT_STREQ(opt->name(), "diffgrad");
}

TEST(DiffGrad, BadOptionsNameTheOptionAndValue) {
  expect_invalid("diffgrad:betas=-0.1/0.999", {"betas must each be in [0, 1)", "-0.1/0.999"});
  expect_invalid("diffgrad:eps=-1e-8", {"eps must be a finite number > 0", "-1e-08"});
  expect_invalid("diffgrad:lr=inf", {"lr must be", "inf"});
  expect_invalid("diffgrad:weight_decay=-1", {"weight_decay must be", "-1"});
  expect_invalid("diffgrad:amsgrad=true", {"unknown option 'amsgrad'", "weight_decay"});
}

TEST(DiffGrad, FrictionIsTheSigmoidOfTheGradientChange) {
  // t = 1, prev = 0: m / (sqrt(v) + eps) * sqrt(bc2) / bc1 = sign(g), so p -= lr * xi * sign(g)
  // with xi = sigmoid(|g|).
  Buffers b{{1.0f, -2.0f, 0.5f}, {0.5f, -3.0f, 0.0f}};
  auto opt = make_optimizer("diffgrad:lr=0.1,eps=1e-12", {b.param()});
  opt->step();
  EXPECT_NEAR(b.value[0], 1.0 - 0.1 * sigmoid(0.5), 1e-6);
  EXPECT_NEAR(b.value[1], -2.0 + 0.1 * sigmoid(3.0), 1e-6);
  EXPECT_FLOAT_EQ(b.value[2], 0.5f);  // g = 0: m = 0
  // t = 2 with the same g: m / sqrt(v) debiased is sign(g) again and |prev - g| = 0, xi = 0.5
  // (diffGrad v1 kept xi = 0.5 at every step: its prev aliased the gradient).
  const float p0 = b.value[0];
  opt->step();
  EXPECT_NEAR(b.value[0], p0 - 0.1 * 0.5, 1e-6);
  // t = 3 with g = 0.5 + 2: xi = sigmoid(2), and prev is stored as a copy.
  const float p1 = b.value[0];
  b.grad = {2.5f, -3.0f, 0.0f};
  opt->step();
  const double m = 0.9 * 0.095 + 0.1 * 2.5;  // m after two steps of 0.5 is 0.095
  const double v = 0.999 * 0.001999 * 0.25 + 0.001 * 6.25;
  const double step = 0.1 * std::sqrt(1 - std::pow(0.999, 3)) / (1 - std::pow(0.9, 3));
  EXPECT_NEAR(p1 - b.value[0], step * m * sigmoid(2.0) / std::sqrt(v), 1e-6);
  EXPECT_FLOAT_EQ(state_floats(opt->state_dict(), "state.0.previous_grad").at(0), 2.5f);
}

TEST(DiffGrad, CoupledDecayEntersTheGradientAndThePreviousGradient) {
  // g = 0.4 + 0.1 * 1 = 0.5: the first step is as for g = 0.5, and prev holds 0.5 (the code
  // adds the decay into grad in place before copying it).
  Buffers b{{1.0f}, {0.4f}};
  auto opt = make_optimizer("diffgrad:lr=0.1,eps=1e-12,weight_decay=0.1", {b.param("w")});
  opt->step();
  EXPECT_NEAR(b.value[0], 1.0 - 0.1 * sigmoid(0.5), 1e-6);
  EXPECT_FLOAT_EQ(state_floats(opt->state_dict(), "state.0.previous_grad").at(0), 0.5f);
  EXPECT_FLOAT_EQ(b.grad[0], 0.4f);  // terse leaves the gradient alone
}

TEST(DiffGrad, VectorisableExpIsWithinTwoUlpOfLibm) {
  // Up to the clamp at 87 (past it exp(-87), where 1 / (1 + e) is 1 in f32), and the edges.
  for (float d = 0.0f; d <= 87.0f; d = d * 1.01f + 1e-4f) {
    const float want = std::exp(-d);
    EXPECT_NEAR(DiffGradRule::exp_neg(d), want, 2.5f * std::numeric_limits<float>::epsilon() * want)
        << "d = " << d;
  }
  EXPECT_EQ(DiffGradRule::exp_neg(0.0f), 1.0f);
  EXPECT_LT(DiffGradRule::exp_neg(88.0f), 2e-38f);
  EXPECT_LT(DiffGradRule::exp_neg(1e30f), 2e-38f);
  EXPECT_LT(DiffGradRule::exp_neg(std::numeric_limits<float>::infinity()), 2e-38f);
  EXPECT_TRUE(std::isnan(DiffGradRule::exp_neg(std::numeric_limits<float>::quiet_NaN())));
}

TEST(DiffGrad, StateRoundTripAndBytes) {
  Buffers a{{0.5f, -1.0f, 2.0f}, {0.1f, -0.2f, 0.3f}};
  const char* spec = "diffgrad:lr=0.01,weight_decay=0.01";
  auto opt = make_optimizer(spec, {a.param("w")});
  EXPECT_EQ(opt->state_bytes(), 0u);
  for (int s = 0; s < 3; ++s) {
    a.grad = {0.1f * s, -0.2f, 0.05f * s};
    opt->step();
  }
  EXPECT_EQ(opt->state_bytes(), 3 * 3 * sizeof(float));  // exp_avg, exp_avg_sq, previous_grad
  const StateDict sd = opt->state_dict();
  EXPECT_EQ(sd.tensors.size(), 3u);
  EXPECT_EQ(sd.tensor("state.0.previous_grad").numel(), 3);
  Buffers copy = a;
  auto resumed = make_optimizer(spec, {copy.param("w")});
  resumed->load_state_dict(sd);
  EXPECT_EQ(resumed->state_dict(), sd);
  for (int s = 3; s < 6; ++s) {
    a.grad = {0.1f * s, -0.2f, 0.05f * s};
    copy.grad = a.grad;
    opt->step();
    resumed->step();
  }
  EXPECT_EQ(a.value, copy.value);
  EXPECT_EQ(opt->state_dict(), resumed->state_dict());
  auto adam = make_optimizer("adam", {copy.param("w")});
  EXPECT_THROW(adam->load_state_dict(sd), InvalidArgument);
}

}  // namespace
}  // namespace terse

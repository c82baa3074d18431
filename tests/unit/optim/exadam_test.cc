// exadam: options, hand-computed first steps, state (spec optimizers.md §9).

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "optim_test_util.h"
#include "terse/optim/optimizer.h"

namespace terse {
namespace {

using test::Buffers;
using test::expect_invalid;

TEST(ExAdam, DefaultsAreTheOfficialOnes) {
  Buffers b{{1.0f}, {1.0f}};
  auto opt = make_optimizer("exadam", {b.param()});
  const OptionMap o = opt->options();
  EXPECT_EQ(o.at("lr"), "0.001");
  EXPECT_EQ(o.at("betas"), "0.9/0.999");
  EXPECT_EQ(o.at("eps"), "1e-08");
  EXPECT_EQ(o.at("weight_decay"), "0");
  EXPECT_EQ(o.size(), 4u);
  EXPECT_STREQ(opt->name(), "exadam");
}

TEST(ExAdam, BadOptionsNameTheOptionAndValue) {
  expect_invalid("exadam:betas=0.9/1", {"betas must each be in [0, 1)", "0.9/1"});
  expect_invalid("exadam:eps=0", {"eps must be a finite number > 0", "got 0"});
  expect_invalid("exadam:eps=nan", {"eps must be", "nan"});
  expect_invalid("exadam:lr=-1", {"lr must be", "-1"});
  expect_invalid("exadam:weight_decay=-0.1", {"weight_decay must be", "-0.1"});
  expect_invalid("exadam:amsgrad=true", {"unknown option 'amsgrad'", "lr, betas, eps"});
}

TEST(ExAdam, FirstStepIsTheSameSizeForEveryNonzeroGradient) {
  // t = 1, eps negligible: m = 0.1 g, v = 0.001 g^2, d1 = 1 + 0.999, d2 = 1 + 0.9, so
  // m~ = 1.999 g, g~ = 19.99 g, v~ = 1.9 g^2 and the step is lr * 21.989 / sqrt(1.9) * sign(g),
  // after the decoupled decay p *= 1 - lr * wd.
  Buffers b{{1.0f, -2.0f, 0.5f, 3.0f}, {0.5f, -3.0f, 0.05f, 0.0f}};
  auto opt = make_optimizer("exadam:lr=0.01,eps=1e-12,weight_decay=0.1", {b.param()});
  opt->step();
  const double step = 0.01 * 21.989 / std::sqrt(1.9);
  const double decay = 1 - 0.01 * 0.1;
  EXPECT_NEAR(b.value[0], 1.0 * decay - step, 1e-6);
  EXPECT_NEAR(b.value[1], -2.0 * decay + step, 1e-6);
  EXPECT_NEAR(b.value[2], 0.5 * decay - step, 1e-6);
  EXPECT_FLOAT_EQ(b.value[3], static_cast<float>(3.0 * decay));  // g = 0: m = v = 0, decay only
}

TEST(ExAdam, SecondStepUsesTheStepPowersInTheDebiasingTerms) {
  // g = 1 then 0. t = 2: m = 0.09, v = 0.000999, bc1 = 0.19, bc2 = 0.001999,
  // d1 = 1 + 0.999^2, d2 = 1 + 0.9^2, g~ = 0:  p -= lr * (m / bc1 * d1) / sqrt(v / bc2 * d2).
  Buffers b{{0.0f}, {1.0f}};
  auto opt = make_optimizer("exadam:lr=0.01,eps=1e-12", {b.param()});
  opt->step();
  const float p1 = b.value[0];
  b.grad = {0.0f};
  opt->step();
  const double expected = 0.01 * (0.09 / 0.19 * 1.998001) / std::sqrt(0.000999 / 0.001999 * 1.81);
  EXPECT_NEAR(p1 - b.value[0], expected, 1e-7);
}

TEST(ExAdam, StateRoundTripAndBytes) {
  Buffers a{{0.5f, -1.0f, 2.0f}, {0.1f, -0.2f, 0.3f}};
  const char* spec = "exadam:lr=0.01,weight_decay=0.01";
  auto opt = make_optimizer(spec, {a.param("w")});
  EXPECT_EQ(opt->state_bytes(), 0u);
  for (int s = 0; s < 3; ++s) {
    a.grad = {0.1f * s, -0.2f, 0.05f * s};
    opt->step();
  }
  EXPECT_EQ(opt->state_bytes(), 3 * 2 * sizeof(float));  // m and v
  const StateDict sd = opt->state_dict();
  EXPECT_EQ(sd.tensor("state.0.m").numel(), 3);
  EXPECT_EQ(sd.tensor("state.0.v").numel(), 3);
  EXPECT_EQ(sd.tensors.size(), 2u);
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
}

}  // namespace
}  // namespace terse

// lion: options, a hand-computed first step, state (spec optimizers.md §8).

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "optim_test_util.h"
#include "terse/optim/optimizer.h"

namespace terse {
namespace {

using test::Buffers;
using test::expect_invalid;

TEST(Lion, DefaultsAreTheOfficialOnes) {
  Buffers b{{1.0f}, {1.0f}};
  auto opt = make_optimizer("lion", {b.param()});
  const OptionMap o = opt->options();
  EXPECT_EQ(o.at("lr"), "0.0001");
  EXPECT_EQ(o.at("betas"), "0.9/0.99");
  EXPECT_EQ(o.at("weight_decay"), "0");
  EXPECT_EQ(o.at("decoupled_weight_decay"), "false");
  EXPECT_EQ(o.size(), 4u);
  EXPECT_STREQ(opt->name(), "lion");
}

TEST(Lion, BadOptionsNameTheOptionAndValue) {
  expect_invalid("lion:betas=1.5/0.99", {"betas must each be in [0, 1]", "1.5/0.99"});
  expect_invalid("lion:betas=0.9/-0.1", {"betas", "0.9/-0.1"});
  expect_invalid("lion:lr=-1e-4", {"lr must be", "-0.0001"});
  expect_invalid("lion:weight_decay=-0.1", {"weight_decay must be", "-0.1"});
  expect_invalid("lion:weight_decay=nan", {"weight_decay must be", "nan"});
  expect_invalid("lion:eps=1e-8", {"unknown option 'eps'", "lr, betas, weight_decay"});
  expect_invalid("lion:decoupled_weight_decay=maybe", {"'decoupled_weight_decay'", "'maybe'"});
  expect_invalid("lion:lr=0,decoupled_weight_decay=true", {"decoupled_weight_decay", "lr=0"});
  expect_invalid("lino", {"unknown optimizer 'lino'", "lion"});
}

TEST(Lion, FirstStepIsDecayThenMinusLrTimesSign) {
  // m = 0, so c = (1 - beta1) g and the update is -lr * sign(g) after p *= 1 - lr * wd.
  Buffers b{{1.0f, -2.0f, 0.5f}, {0.5f, -3.0f, 0.0f}};
  auto opt = make_optimizer("lion:lr=0.1,weight_decay=0.1", {b.param()});
  opt->step();
  const float decay = 1.0f - 0.1f * 0.1f;
  EXPECT_FLOAT_EQ(b.value[0], 1.0f * decay - 0.1f);
  EXPECT_FLOAT_EQ(b.value[1], -2.0f * decay + 0.1f);
  EXPECT_FLOAT_EQ(b.value[2], 0.5f * decay);  // sign(0) = 0: decay only
  // m = (1 - beta2) g = 0.01 g. Step 2 with g = -0.02: c = 0.9 * 0.005 + 0.1 * -0.02 = 0.0025
  // > 0 for element 0, so the sign comes from the momentum, not from the new gradient.
  const float p0 = b.value[0];
  b.grad = {-0.02f, 0.0f, 0.0f};
  opt->step();
  EXPECT_FLOAT_EQ(b.value[0], p0 * decay - 0.1f);
}

TEST(Lion, DecoupledWeightDecayDividesByTheInitialLr) {
  Buffers b{{1.0f}, {0.0f}};
  auto opt =
      make_optimizer("lion:lr=0.01,weight_decay=0.1,decoupled_weight_decay=true", {b.param()});
  opt->scale_lr(0.5);  // lr 0.005: decay = 1 - 0.005 * 0.1 / 0.01
  opt->step();
  EXPECT_FLOAT_EQ(b.value[0], 1.0f - 0.05f);
}

TEST(Lion, StateRoundTripAndBytes) {
  Buffers a{{0.5f, -1.0f, 2.0f}, {0.1f, -0.2f, 0.3f}}, copy;
  auto opt = make_optimizer("lion:lr=0.01,betas=0.95/0.98", {a.param("w")});
  EXPECT_EQ(opt->state_bytes(), 0u);
  opt->step();
  EXPECT_EQ(opt->state_bytes(), 3 * sizeof(float));  // one f32 state per parameter
  const StateDict sd = opt->state_dict();
  EXPECT_EQ(sd.tensor("state.0.exp_avg").numel(), 3);
  EXPECT_EQ(sd.tensors.size(), 1u);
  copy = a;
  auto resumed = make_optimizer("lion:lr=0.01,betas=0.95/0.98", {copy.param("w")});
  resumed->load_state_dict(sd);
  EXPECT_EQ(resumed->state_dict(), sd);
  for (int s = 0; s < 3; ++s) {
    a.grad = {-0.3f * s, 0.2f, 0.05f * s};
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

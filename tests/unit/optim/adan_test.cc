// adan: options, hand-computed steps, global-norm clip, restart, state (spec optimizers.md §6).

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
using test::state_floats;

TEST(Adan, DefaultsAreTheOfficialOnes) {
  Buffers b{{1.0f}, {1.0f}};
  auto opt = make_optimizer("adan", {b.param()});
  const OptionMap o = opt->options();
  EXPECT_EQ(o.at("lr"), "0.001");
  EXPECT_EQ(o.at("betas"), "0.98/0.92/0.99");
  EXPECT_EQ(o.at("eps"), "1e-08");
  EXPECT_EQ(o.at("weight_decay"), "0");
  EXPECT_EQ(o.at("max_grad_norm"), "0");
  EXPECT_EQ(o.at("no_prox"), "false");
  EXPECT_EQ(o.at("restart_every"), "0");
  EXPECT_EQ(o.size(), 7u);
  EXPECT_STREQ(opt->name(), "adan");
}

TEST(Adan, BadOptionsNameTheOptionAndValue) {
  expect_invalid("adan:betas=0.98/0.92", {"three numbers written a/b/c", "0.98/0.92"});
  expect_invalid("adan:betas=0.98/1/0.99", {"betas must each be in [0, 1)", "0.98/1/0.99"});
  expect_invalid("adan:betas=0.98/0.92/-0.1", {"betas", "0.98/0.92/-0.1"});
  expect_invalid("adan:eps=-1e-8", {"eps must be", "-1e-08"});
  expect_invalid("adan:max_grad_norm=-1", {"max_grad_norm must be", "-1"});
  expect_invalid("adan:restart_every=1.5", {"restart_every must be a whole number", "1.5"});
  expect_invalid("adan:restart_every=-2", {"restart_every", "-2"});
  expect_invalid("adan:no_prox=maybe", {"'no_prox'", "'maybe'"});
  expect_invalid("adan:lr=-1", {"lr must be", "-1"});
  expect_invalid("adan:weight_decay=-1", {"weight_decay must be", "-1"});
  expect_invalid("adan:foreach=true", {"unknown option 'foreach'", "max_grad_norm, no_prox"});
  // The clip is over all groups together, so one group may not have its own.
  Buffers a{{1.0f}, {1.0f}}, b{{1.0f}, {1.0f}};
  std::vector<ParamGroup> groups(2);
  groups[0].params = {a.param()};
  groups[1].params = {b.param()};
  groups[1].overrides["max_grad_norm"] = "2";
  try {
    make_optimizer(OptimizerSpec{"adan", {}}, std::move(groups));
    ADD_FAILURE() << "per-group max_grad_norm accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("adan (group 1): max_grad_norm = '2'"), std::string::npos)
        << e.what();
  }
}

TEST(Adan, FirstStepIsLrTimesSignThenProximalDecay) {
  // Step 1: d = 0, m = (1 - b1) g, n = (1 - b3) g^2, so m / bc1 / (sqrt(n / bc3)) = sign(g).
  Buffers b{{1.0f, -2.0f}, {0.5f, -3.0f}};
  auto opt = make_optimizer("adan:lr=0.1,weight_decay=0.5,eps=0", {b.param()});
  opt->step();
  EXPECT_NEAR(b.value[0], (1.0 - 0.1) / 1.05, 1e-6);
  EXPECT_NEAR(b.value[1], (-2.0 + 0.1) / 1.05, 1e-6);
  // no_prox: decay first, multiplicatively.
  Buffers c{{1.0f, -2.0f}, {0.5f, -3.0f}};
  auto np = make_optimizer("adan:lr=0.1,weight_decay=0.5,eps=0,no_prox=true", {c.param()});
  np->step();
  EXPECT_NEAR(c.value[0], 1.0 * 0.95 - 0.1, 1e-6);
  EXPECT_NEAR(c.value[1], -2.0 * 0.95 + 0.1, 1e-6);
}

TEST(Adan, SecondStepUsesTheGradientDifference) {
  // betas 0.5: step 1 (g = 1): p = 0.9, m = 0.5, diff = 0, n = 0.5, prev = 1.
  // Step 2 (g = 3): d = 2, m = 1.75, diff = 1, n = 0.25 + 0.5 * (3 + 0.5 * 2)^2 = 8.25,
  // bc = 0.75 each, den = sqrt(8.25 / 0.75) = sqrt(11),
  // p = 0.9 - (0.1 / 0.75 * 1.75 + 0.1 * 0.5 / 0.75 * 1) / sqrt(11) = 0.9 - 0.3 / sqrt(11).
  Buffers b{{1.0f}, {1.0f}};
  auto opt = make_optimizer("adan:lr=0.1,betas=0.5/0.5/0.5,eps=0", {b.param()});
  opt->step();
  EXPECT_NEAR(b.value[0], 0.9, 1e-7);
  b.grad = {3.0f};
  opt->step();
  EXPECT_NEAR(b.value[0], 0.9 - 0.3 / std::sqrt(11.0), 1e-6);
  const StateDict sd = opt->state_dict();
  EXPECT_FLOAT_EQ(state_floats(sd, "state.0.exp_avg")[0], 1.75f);
  EXPECT_FLOAT_EQ(state_floats(sd, "state.0.exp_avg_sq")[0], 8.25f);
  EXPECT_FLOAT_EQ(state_floats(sd, "state.0.exp_avg_diff")[0], 1.0f);
  EXPECT_FLOAT_EQ(state_floats(sd, "state.0.neg_pre_grad")[0], -3.0f);
  EXPECT_EQ(b.grad[0], 3.0f);  // the gradient is read, not written
}

TEST(Adan, ClipUsesTheNormOfAllGroups) {
  // Gradients 3 (group 0) and 4 (group 1): global norm 5, so with max_grad_norm = 1 every
  // gradient is scaled by 1 / (5 + eps) = 0.2 (eps of the last group; 0 here).
  Buffers a{{1.0f}, {3.0f}}, b{{1.0f}, {4.0f}};
  std::vector<ParamGroup> groups(2);
  groups[0].params = {a.param()};
  groups[1].params = {b.param()};
  groups[1].overrides["eps"] = "0";
  auto opt = make_optimizer(OptimizerSpec{"adan", {{"max_grad_norm", "1"}}}, std::move(groups));
  opt->step();
  const StateDict sd = opt->state_dict();
  EXPECT_FLOAT_EQ(state_floats(sd, "state.0.neg_pre_grad")[0], -0.6f);
  EXPECT_FLOAT_EQ(state_floats(sd, "state.1.neg_pre_grad")[0], -0.8f);
  EXPECT_FLOAT_EQ(state_floats(sd, "state.1.exp_avg")[0], 0.02f * 0.8f);
  EXPECT_EQ(a.grad[0], 3.0f);
  EXPECT_EQ(b.grad[0], 4.0f);
  // A norm below max_grad_norm leaves the gradients as they are (the coefficient is <= 1).
  Buffers c{{1.0f}, {3.0f}}, d{{1.0f}, {4.0f}};
  auto loose = make_optimizer("adan:max_grad_norm=10", {c.param(), d.param()});
  loose->step();
  EXPECT_FLOAT_EQ(state_floats(loose->state_dict(), "state.1.neg_pre_grad")[0], -4.0f);
}

TEST(Adan, RestartEveryStartsTheStatesAndStepCountAfresh) {
  // restart_every=2: step 3 is a first step again (official restart_opt() after step 2), so it
  // matches a fresh optimizer's first step from the same parameters, bit for bit.
  const std::vector<std::vector<float>> grads = {{0.5f, -1.0f}, {2.0f, 0.25f}, {-0.75f, 1.5f}};
  Buffers a{{1.0f, -2.0f}, grads[0]};
  auto opt = make_optimizer("adan:lr=0.05,weight_decay=0.02,restart_every=2", {a.param("w")});
  opt->step();
  a.grad = grads[1];
  opt->step();
  Buffers fresh_b{a.value, grads[2]};
  auto fresh = make_optimizer("adan:lr=0.05,weight_decay=0.02", {fresh_b.param("w")});
  // The restart cycle position comes from step_count, so it survives a state_dict round trip.
  Buffers r{a.value, grads[2]};
  auto resumed = make_optimizer("adan:lr=0.05,weight_decay=0.02,restart_every=2", {r.param("w")});
  resumed->load_state_dict(opt->state_dict());
  Buffers never{a.value, grads[2]};
  auto no_restart = make_optimizer("adan:lr=0.05,weight_decay=0.02", {never.param("w")});
  no_restart->load_state_dict(opt->state_dict());
  a.grad = grads[2];
  opt->step();
  fresh->step();
  resumed->step();
  no_restart->step();
  EXPECT_EQ(a.value, fresh_b.value);
  EXPECT_EQ(r.value, fresh_b.value);
  EXPECT_NE(never.value, fresh_b.value);
  for (const char* s : {"exp_avg", "exp_avg_sq", "exp_avg_diff", "neg_pre_grad"}) {
    const std::string key = std::string("state.0.") + s;
    EXPECT_EQ(state_floats(opt->state_dict(), key), state_floats(fresh->state_dict(), key)) << key;
  }
}

TEST(Adan, StateRoundTripAndBytes) {
  Buffers a{{0.5f, -1.0f, 2.0f}, {0.1f, -0.2f, 0.3f}}, copy;
  const char* spec = "adan:lr=0.01,weight_decay=0.02,max_grad_norm=0.1";
  auto opt = make_optimizer(spec, {a.param("w")});
  EXPECT_EQ(opt->state_bytes(), 0u);
  opt->step();
  EXPECT_EQ(opt->state_bytes(), 3 * 16u);  // four f32 states per parameter
  const StateDict sd = opt->state_dict();
  EXPECT_EQ(sd.tensors.size(), 4u);
  copy = a;
  auto resumed = make_optimizer(spec, {copy.param("w")});
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
  auto lion = make_optimizer("lion", {copy.param("w")});
  EXPECT_THROW(lion->load_state_dict(sd), InvalidArgument);
}

}  // namespace
}  // namespace terse

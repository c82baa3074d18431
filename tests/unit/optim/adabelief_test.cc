// adabelief: options, hand-computed first steps, the RAdam switch, state (spec optimizers.md §7).

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "optim_test_util.h"
#include "terse/kernels/adabelief_rule.h"
#include "terse/optim/optimizer.h"

namespace terse {
namespace {

using test::Buffers;
using test::expect_invalid;

TEST(AdaBelief, DefaultsAreTheOfficialOnes) {
  Buffers b{{1.0f}, {1.0f}};
  auto opt = make_optimizer("adabelief", {b.param()});
  const OptionMap o = opt->options();
  EXPECT_EQ(o.at("lr"), "0.001");
  EXPECT_EQ(o.at("betas"), "0.9/0.999");
  EXPECT_EQ(o.at("eps"), "1e-16");
  EXPECT_EQ(o.at("weight_decay"), "0");
  EXPECT_EQ(o.at("amsgrad"), "false");
  EXPECT_EQ(o.at("weight_decouple"), "true");
  EXPECT_EQ(o.at("fixed_decay"), "false");
  EXPECT_EQ(o.at("rectify"), "true");
  EXPECT_EQ(o.at("degenerated_to_sgd"), "true");
  EXPECT_EQ(o.size(), 9u);
}

TEST(AdaBelief, BadOptionsNameTheOptionAndValue) {
  expect_invalid("adabelief:betas=0.9/1", {"betas must each be in [0, 1)", "0.9/1"});
  expect_invalid("adabelief:eps=-1e-16", {"eps must be", "-1e-16"});
  expect_invalid("adabelief:eps=inf", {"eps must be", "inf"});
  expect_invalid("adabelief:lr=-0.5", {"lr must be", "-0.5"});
  expect_invalid("adabelief:weight_decay=-1", {"weight_decay must be", "-1"});
  expect_invalid("adabelief:fixed_decay=true,weight_decay=2", {"fixed_decay=true", "got 2"});
  expect_invalid("adabelief:rectify=on", {"'rectify'", "'on'", "true or false"});
  expect_invalid("adabelief:momentum=0.9", {"unknown option 'momentum'", "rectify"});
}

TEST(AdaBelief, FirstRectifiedStepIsSgd) {
  // rho_1 = 1 < 5: p = p (1 - lr wd) - lr m / bc1 = 0.99 - 0.1 * 0.05 / 0.1.
  Buffers b{{1.0f, -1.0f}, {0.5f, -0.5f}};
  auto opt = make_optimizer("adabelief:lr=0.1,weight_decay=0.1", {b.param()});
  opt->step();
  EXPECT_FLOAT_EQ(b.value[0], 0.94f);
  EXPECT_FLOAT_EQ(b.value[1], -0.94f);
  Buffers c{{1.0f}, {0.5f}};
  auto none =
      make_optimizer("adabelief:lr=0.1,weight_decay=0.1,degenerated_to_sgd=false", {c.param()});
  none->step();
  EXPECT_FLOAT_EQ(c.value[0], 0.99f);  // decay only while rho_t < 5
}

TEST(AdaBelief, FirstUnrectifiedStepAndEpsInState) {
  // m = 0.05, s = 0.001 * (0.5 - 0.05)^2 + eps; sqrt(s / bc2) = 0.45 (eps negligible), so
  // p -= (0.1 / 0.1) * 0.05 / 0.45.
  Buffers b{{1.0f}, {0.5f}};
  auto opt = make_optimizer("adabelief:lr=0.1,rectify=false", {b.param()});
  opt->step();
  EXPECT_NEAR(b.value[0], 1.0f - 1.0f / 9.0f, 1e-6);
  // eps is added into the state itself (official code and paper).
  Buffers c{{1.0f}, {0.5f}};
  auto big_eps = make_optimizer("adabelief:lr=0.1,rectify=false,eps=1e-3", {c.param("w")});
  big_eps->step();
  const StateDict sd = big_eps->state_dict();
  float v = 0;
  sd.tensor("state.0.exp_avg_var").copy_to(TensorView::of(&v, 1), "exp_avg_var");
  EXPECT_FLOAT_EQ(v, 0.001f * 0.45f * 0.45f + 1e-3f);
  // Coupled decay (weight_decouple=false) adds wd * p to the gradient instead.
  Buffers d{{1.0f}, {0.4f}};
  auto coupled = make_optimizer(
      "adabelief:lr=0.1,rectify=false,weight_decouple=false,"
      "weight_decay=0.1",
      {d.param()});
  coupled->step();  // g = 0.5 as above
  EXPECT_NEAR(d.value[0], 1.0f - 1.0f / 9.0f, 1e-6);
}

TEST(AdaBelief, RectificationStartsWhenRhoReachesFive) {
  // beta2 = 0.999: rho_5 = 4.996, rho_6 = 5.994 (official code: rectified when rho_t >= 5).
  const auto r5 =
      AdaBeliefRule<false>::for_step(1.0, 0.9, 0.999, 1e-16, 0, true, false, true, true, 5);
  EXPECT_FALSE(r5.adaptive);
  EXPECT_TRUE(r5.apply);
  const auto r6 =
      AdaBeliefRule<false>::for_step(1.0, 0.9, 0.999, 1e-16, 0, true, false, true, true, 6);
  EXPECT_TRUE(r6.adaptive);
  EXPECT_FLOAT_EQ(r6.neg_step_size, -0.004263276234960649f);  // from the official formula
  EXPECT_FLOAT_EQ(r6.bias_correction2_sqrt, 1.0f);
}

TEST(AdaBelief, StateRoundTripAndBytes) {
  struct Case {
    const char* spec;
    size_t per_element;
  } cases[] = {{"adabelief:lr=0.01", 8}, {"adabelief:lr=0.01,amsgrad=true", 12}};
  for (const auto& c : cases) {
    Buffers a{{0.5f, -1.0f, 2.0f}, {0.1f, -0.2f, 0.3f}};
    auto opt = make_optimizer(c.spec, {a.param("w")});
    EXPECT_EQ(opt->state_bytes(), 0u);
    for (int s = 0; s < 7; ++s) {  // past the rectification switch
      a.grad = {0.1f * s, -0.2f, 0.05f * (s % 3)};
      opt->step();
    }
    EXPECT_EQ(opt->state_bytes(), 3 * c.per_element) << c.spec;
    const StateDict sd = opt->state_dict();
    Buffers copy = a;
    auto resumed = make_optimizer(c.spec, {copy.param("w")});
    resumed->load_state_dict(sd);
    EXPECT_EQ(resumed->state_dict(), sd) << c.spec;
    for (int s = 7; s < 10; ++s) {
      a.grad = {0.1f * s, -0.2f, 0.05f * (s % 3)};
      copy.grad = a.grad;
      opt->step();
      resumed->step();
    }
    EXPECT_EQ(a.value, copy.value) << c.spec;
    EXPECT_EQ(opt->state_dict(), resumed->state_dict()) << c.spec;
  }
}

}  // namespace
}  // namespace terse

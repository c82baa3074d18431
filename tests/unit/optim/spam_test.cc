// spam: options, hand-computed steps, momentum reset, cosine warm-up and spike clipping at the
// exact steps of the official code, state (spec optimizers.md §12).

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
using test::state_scalar;

// lr * sqrt(bc2) / bc1 at step t, the bias-corrected step size of the official code.
double step_size(double lr, int t) {
  return lr * std::sqrt(1 - std::pow(0.999, t)) / (1 - std::pow(0.9, t));
}

TEST(Spam, DefaultsAreTheOfficialOnes) {
  Buffers b{{1.0f}, {1.0f}};
  auto opt = make_optimizer("spam", {b.param()});
  const OptionMap o = opt->options();
  EXPECT_EQ(o.at("lr"), "0.001");
  EXPECT_EQ(o.at("betas"), "0.9/0.999");
  EXPECT_EQ(o.at("eps"), "1e-06");
  EXPECT_EQ(o.at("weight_decay"), "0");
  EXPECT_EQ(o.at("correct_bias"), "true");
  EXPECT_EQ(o.at("warmup_steps"), "150");
  EXPECT_EQ(o.at("threshold"), "5000");
  EXPECT_EQ(o.at("DeltaT"), "500");
  EXPECT_EQ(o.at("grad_accu_steps"), "20");
  EXPECT_EQ(o.size(), 9u);
  EXPECT_STREQ(opt->name(), "spam");
}

TEST(Spam, BadOptionsNameTheOptionAndValue) {
  expect_invalid("spam:DeltaT=0", {"DeltaT must be a whole number >= 1", "got 0"});
  expect_invalid("spam:DeltaT=2.5", {"DeltaT must be a whole number", "2.5"});
  expect_invalid("spam:warmup_steps=-1", {"warmup_steps must be a whole number >= 0", "-1"});
  expect_invalid("spam:grad_accu_steps=1.5", {"grad_accu_steps must be a whole number", "1.5"});
  expect_invalid("spam:grad_accu_steps=inf", {"grad_accu_steps", "inf"});
  // Clipping against the zero second moment would zero every gradient (the official code
  // then never moves with 0, or not before step DeltaT with 1).
  expect_invalid("spam:grad_accu_steps=1", {"grad_accu_steps must be >= 2 with threshold", "1"});
  expect_invalid("spam:grad_accu_steps=0", {"grad_accu_steps must be >= 2", "got 0"});
  Buffers b{{1.0f}, {0.5f}};
  EXPECT_NO_THROW(make_optimizer("spam:grad_accu_steps=0,threshold=0", {b.param()}));
  expect_invalid("spam:threshold=-3", {"threshold must be a finite number >= 0", "-3"});
  expect_invalid("spam:eps=0", {"eps must be a finite number > 0", "got 0"});
  expect_invalid("spam:betas=0.9/1", {"betas must each be in [0, 1)", "0.9/1"});
  expect_invalid("spam:weight_decay=-0.1", {"weight_decay must be", "-0.1"});
  expect_invalid("spam:correct_bias=yes", {"'correct_bias'", "'yes'"});
  expect_invalid("spam:density=0.5", {"unknown option 'density'", "DeltaT, grad_accu_steps"});
  expect_invalid("spam:note=x", {"unknown option 'note'"});
}

TEST(Spam, FirstStepDecaysAfterTheUpdate) {
  // t = 1: sqrt(bc2) / bc1 * m / sqrt(v) = sign(g), so p = (p - lr * sign(g)) * (1 - lr * wd);
  // decay before the update would give p * (1 - lr * wd) - lr instead.
  Buffers b{{1.0f, -2.0f, 0.5f}, {0.5f, -3.0f, 0.0f}};
  auto opt = make_optimizer("spam:lr=0.1,eps=1e-12,weight_decay=0.1", {b.param()});
  opt->step();
  EXPECT_NEAR(b.value[0], (1.0 - 0.1) * 0.99, 1e-6);
  EXPECT_NEAR(b.value[1], (-2.0 + 0.1) * 0.99, 1e-6);
  EXPECT_FLOAT_EQ(b.value[2], 0.5f * 0.99f);
  // correct_bias=false: the step is lr * m / sqrt(v) = lr * 0.1 / sqrt(0.001).
  Buffers c{{1.0f}, {0.5f}};
  auto raw = make_optimizer("spam:lr=0.1,eps=1e-12,correct_bias=false", {c.param()});
  raw->step();
  EXPECT_NEAR(c.value[0], 1.0 - 0.1 * 0.1 / std::sqrt(0.001), 1e-5);
}

TEST(Spam, MomentumResetAndCosineWarmUpAtTheExactSteps) {
  // DeltaT = 4, warmup_steps = 2, no clipping, g = 1 always. The moments restart at steps 4 and
  // 8 (t % DeltaT == 0) but the bias correction keeps counting t. The update is scaled by
  // 1 - 0.99 * (1 + cos(pi * k / 3)) / 2 for the k = t - (last reset) < 2 steps from a reset:
  // 0.01 at the reset step, 0.2575 after it; 1 otherwise, also before the first reset.
  Buffers b{{0.0f}, {1.0f}};
  auto opt =
      make_optimizer("spam:lr=0.1,eps=1e-12,DeltaT=4,warmup_steps=2,threshold=0", {b.param("w")});
  double m = 0, v = 0;
  for (int t = 1; t <= 10; ++t) {
    const bool reset = t % 4 == 0;
    if (reset) m = v = 0;
    m = 0.9 * m + 0.1;
    v = 0.999 * v + 0.001;
    const int k = t - t / 4 * 4;
    const double scale = t < 4 || k >= 2 ? 1.0 : (k == 0 ? 0.01 : 0.2575);
    const float before = b.value[0];
    opt->step();
    EXPECT_NEAR(before - b.value[0], step_size(0.1, t) * scale * m / std::sqrt(v), 1e-6)
        << "step " << t;
    EXPECT_FLOAT_EQ(state_scalar(opt->state_dict(), "state.0.exp_avg"), static_cast<float>(m))
        << "step " << t;
  }
  // Before the first reset the steps are the plain bias-corrected ones, lr * 1.
  Buffers c{{0.0f}, {1.0f}};
  auto plain =
      make_optimizer("spam:lr=0.1,eps=1e-12,DeltaT=4,warmup_steps=2,threshold=0", {c.param()});
  for (int t = 1; t <= 3; ++t) plain->step();
  EXPECT_NEAR(c.value[0], -0.3, 1e-6);
}

// Steps g = 1 with a spike g = 100 at step `spike`; returns exp_avg_sq after that step.
float second_moment_after_spike(const std::string& spec, int spike) {
  Buffers b{{0.0f}, {1.0f}};
  auto opt = make_optimizer(spec, {b.param("w")});
  for (int t = 1; t <= spike; ++t) {
    b.grad = {t == spike ? 100.0f : 1.0f};
    opt->step();
  }
  return state_scalar(opt->state_dict(), "state.0.exp_avg_sq");
}

TEST(Spam, SpikeClippingIsOffForGradAccuStepsFromEveryReset) {
  // threshold = 3: a clipped spike becomes sqrt(3 v), so v grows by 1.002 (v -> 0.999 v +
  // 0.001 * 3 v); an unclipped one adds 0.001 * 1e4 = 10. With DeltaT = 4 and
  // grad_accu_steps = 2 clipping needs t >= 2 and t % 4 >= 2.
  const std::string spec = "spam:lr=0.1,threshold=3,DeltaT=4,grad_accu_steps=2,warmup_steps=0";
  const bool clipped[] = {false, true, true, false, false, true, true, false, false, true};
  for (int t = 1; t <= 10; ++t) {
    EXPECT_EQ(second_moment_after_spike(spec, t) < 1.0f, clipped[t - 1]) << "spike at step " << t;
  }
  // Step 2 by hand: v1 = 0.001, so g = sqrt(0.003) and v2 = 0.999 * 0.001 + 0.001 * 0.003.
  EXPECT_FLOAT_EQ(second_moment_after_spike(spec, 2), 0.999f * 0.001f + 0.001f * 0.003f);
  // A negative spike keeps its sign: m2 = 0.9 * 0.1 - 0.1 * sqrt(0.003).
  Buffers b{{0.0f}, {1.0f}};
  auto opt = make_optimizer(spec, {b.param("w")});
  opt->step();
  b.grad = {-100.0f};
  opt->step();
  EXPECT_NEAR(state_scalar(opt->state_dict(), "state.0.exp_avg"), 0.09 - 0.1 * std::sqrt(0.003),
              1e-7);
  EXPECT_FLOAT_EQ(b.grad[0], -100.0f);  // terse leaves the gradient alone
  // threshold = 0 turns clipping off; grad_accu_steps = 3 delays it to t % 4 >= 3.
  EXPECT_GT(second_moment_after_spike("spam:threshold=0,DeltaT=4,grad_accu_steps=2", 2), 1.0f);
  EXPECT_GT(second_moment_after_spike("spam:threshold=3,DeltaT=4,grad_accu_steps=3", 2), 1.0f);
  EXPECT_LT(second_moment_after_spike("spam:threshold=3,DeltaT=4,grad_accu_steps=3", 3), 1.0f);
}

TEST(Spam, StateRoundTripAcrossAResetAndBytes) {
  // Saved at step 3 and resumed over the reset at 4, the warm-up and a clipped spike at 7: the
  // counters come from the step count alone.
  const char* spec = "spam:lr=0.01,DeltaT=4,warmup_steps=2,threshold=3,grad_accu_steps=2";
  Buffers a{{0.5f, -1.0f, 2.0f}, {0.1f, -0.2f, 0.3f}};
  auto opt = make_optimizer(spec, {a.param("w")});
  EXPECT_EQ(opt->state_bytes(), 0u);
  const auto set_grad = [](Buffers& b, int s) {  // in place: the optimizer holds the pointer
    const float k = s == 7 ? 50.0f : 1.0f;
    b.grad[0] = 0.1f * static_cast<float>(s) * k;
    b.grad[1] = -0.2f * k;
    b.grad[2] = 0.05f * static_cast<float>(s % 3);
  };
  for (int s = 1; s <= 3; ++s) {
    set_grad(a, s);
    opt->step();
  }
  EXPECT_EQ(opt->state_bytes(), 3 * 2 * sizeof(float));  // exp_avg and exp_avg_sq
  const StateDict sd = opt->state_dict();
  EXPECT_EQ(sd.tensors.size(), 2u);
  Buffers copy = a;
  auto resumed = make_optimizer(spec, {copy.param("w")});
  resumed->load_state_dict(sd);
  EXPECT_EQ(resumed->state_dict(), sd);
  for (int s = 4; s <= 9; ++s) {
    set_grad(a, s);
    set_grad(copy, s);
    opt->step();
    resumed->step();
  }
  EXPECT_EQ(a.value, copy.value);
  EXPECT_EQ(opt->state_dict(), resumed->state_dict());
}

}  // namespace
}  // namespace terse

// sgd_sai: options, hand-computed steps, the per-tensor g-SNR, state (spec optimizers.md §4).

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

TEST(SgdSai, DefaultsAreTheOfficialOnes) {
  Buffers b{{1.0f}, {1.0f}};
  auto opt = make_optimizer("sgd_sai", {b.param()});
  const OptionMap o = opt->options();
  EXPECT_EQ(o.at("lr"), "0.01");
  EXPECT_EQ(o.at("momentum"), "0.9");
  EXPECT_EQ(o.at("eps"), "1e-08");
  EXPECT_EQ(o.at("weight_decay"), "0.01");
  EXPECT_EQ(o.size(), 4u);
  EXPECT_STREQ(opt->name(), "sgd_sai");
}

TEST(SgdSai, BadOptionsNameTheOptionAndValue) {
  expect_invalid("sgd_sai:momentum=1", {"momentum must be in [0, 1)", "got 1"});
  expect_invalid("sgd_sai:momentum=-0.1", {"momentum", "-0.1"});
  expect_invalid("sgd_sai:eps=0", {"eps must be a finite number > 0", "got 0"});
  expect_invalid("sgd_sai:eps=nan", {"eps", "nan"});
  expect_invalid("sgd_sai:lr=-1", {"lr must be", "-1"});
  expect_invalid("sgd_sai:weight_decay=-0.1", {"weight_decay must be", "-0.1"});
  expect_invalid("sgd_sai:betas=0.9/0.99", {"unknown option 'betas'", "lr, momentum, eps"});
}

TEST(SgdSai, FirstStepScalesByTheGradientSnr) {
  // g = (3, 4): ||g|| = 5, unbiased std = sqrt(0.5), gsnr = 5 / sqrt(0.5) = sqrt(50).
  // b = g at step 1; p = p * (1 - lr * wd) - lr * gsnr * g.
  Buffers b{{1.0f, 2.0f}, {3.0f, 4.0f}};
  auto opt = make_optimizer("sgd_sai:lr=0.1,weight_decay=0.1", {b.param()});
  opt->step();
  const double gsnr = std::sqrt(50.0);
  EXPECT_NEAR(b.value[0], 1.0 * 0.99 - 0.1 * gsnr * 3.0, 1e-5);
  EXPECT_NEAR(b.value[1], 2.0 * 0.99 - 0.1 * gsnr * 4.0, 1e-5);
  EXPECT_NEAR(state_scalar(opt->state_dict(), "state.0.gsnr"), gsnr, 1e-5);
  // Step 2: a gradient with another SNR does not change the scale (computed once);
  // b = 0.9 * (3, 4) + 0.1 * (1, -1).
  const float p0 = b.value[0], p1 = b.value[1];
  b.grad = {1.0f, -1.0f};
  opt->step();
  EXPECT_NEAR(b.value[0], p0 * 0.99 - 0.1 * gsnr * (0.9 * 3 + 0.1 * 1), 1e-5);
  EXPECT_NEAR(b.value[1], p1 * 0.99 - 0.1 * gsnr * (0.9 * 4 - 0.1 * 1), 1e-5);
  EXPECT_NEAR(state_scalar(opt->state_dict(), "state.0.gsnr"), gsnr, 1e-5);
}

TEST(SgdSai, GsnrIsPerTensorAndAOneElementTensorHasStdZero) {
  // Tensor 1 has one element: std is NaN in torch, nan_to_num makes it 0, so gsnr = |g| / eps.
  Buffers a{{1.0f, 2.0f}, {3.0f, 4.0f}}, one{{1.0f}, {2.0f}};
  auto opt = make_optimizer("sgd_sai:lr=1e-9,weight_decay=0", {a.param(), one.param()});
  opt->step();
  const StateDict sd = opt->state_dict();
  EXPECT_NEAR(state_scalar(sd, "state.0.gsnr"), std::sqrt(50.0), 1e-5);
  EXPECT_NEAR(state_scalar(sd, "state.1.gsnr"), 2e8, 2e8 * 1e-6);
  EXPECT_NEAR(one.value[0], 1.0 - 1e-9 * 2e8 * 2.0, 1e-6);  // 0.6
}

TEST(SgdSai, ZeroMomentumKeepsNoBufferAndStepsAlongTheGradient) {
  Buffers b{{1.0f, 2.0f}, {3.0f, 4.0f}};
  auto opt = make_optimizer("sgd_sai:lr=0.1,momentum=0,weight_decay=0", {b.param()});
  opt->step();
  EXPECT_EQ(opt->state_bytes(), sizeof(float));  // the g-SNR only
  const double gsnr = std::sqrt(50.0);
  const float p0 = b.value[0];
  b.grad = {-2.0f, 0.0f};
  opt->step();
  EXPECT_NEAR(b.value[0], p0 + 0.1 * gsnr * 2.0, 1e-5);
  EXPECT_EQ(opt->state_dict().tensors.size(), 1u);
}

TEST(SgdSai, StateRoundTripBytesAndValidation) {
  Buffers a{{0.5f, -1.0f, 2.0f}, {0.1f, -0.2f, 0.4f}}, c{{1.0f, 1.0f}, {0.3f, 0.1f}};
  auto opt = make_optimizer("sgd_sai:lr=0.01", {a.param("w"), c.param("b")});
  EXPECT_EQ(opt->state_bytes(), 0u);
  opt->step();
  // One f32 buffer per element plus one f32 g-SNR per tensor.
  EXPECT_EQ(opt->state_bytes(), 5 * sizeof(float) + 2 * sizeof(float));
  const StateDict sd = opt->state_dict();
  EXPECT_EQ(sd.tensors.size(), 4u);
  EXPECT_EQ(sd.tensor("state.0.momentum_buffer").numel(), 3);
  EXPECT_EQ(sd.tensor("state.1.gsnr").numel(), 1);
  Buffers a2 = a, c2 = c;
  auto resumed = make_optimizer("sgd_sai:lr=0.01", {a2.param("w"), c2.param("b")});
  resumed->load_state_dict(sd);
  EXPECT_EQ(resumed->state_dict(), sd);
  EXPECT_EQ(resumed->state_bytes(), opt->state_bytes());
  for (int s = 0; s < 3; ++s) {
    a.grad = {-0.3f * s, 0.2f, 0.05f * s};
    c.grad = {1.0f, -2.0f * s};
    a2.grad = a.grad;
    c2.grad = c.grad;
    opt->step();
    resumed->step();  // must not recompute the g-SNR from this gradient
  }
  EXPECT_EQ(a.value, a2.value);
  EXPECT_EQ(c.value, c2.value);
  EXPECT_EQ(opt->state_dict(), resumed->state_dict());

  auto fresh = make_optimizer("sgd_sai:lr=0.01", {a2.param("w"), c2.param("b")});
  for (float bad : {-1.0f, NAN, INFINITY}) {
    StateDict broken = sd;
    broken.tensors["state.1.gsnr"] = StateTensor::copy_of(TensorView::of(&bad, 1));
    EXPECT_THROW(fresh->load_state_dict(broken), CorruptData) << bad;
  }
  StateDict missing = sd;
  missing.tensors.erase("state.0.gsnr");
  EXPECT_THROW(fresh->load_state_dict(missing), CorruptData);
  auto no_momentum = make_optimizer("sgd_sai:momentum=0", {a2.param("w"), c2.param("b")});
  EXPECT_THROW(no_momentum->load_state_dict(sd), InvalidArgument);  // buffers it does not keep
  EXPECT_EQ(fresh->state_bytes(), 0u);  // every failed load left it unchanged
}

}  // namespace
}  // namespace terse

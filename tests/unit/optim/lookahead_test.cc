// lookahead: hand-computed syncs around sgd, equivalence with adam, options, state (spec
// optimizers.md §16).

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "optim_test_util.h"
#include "terse/optim/optimizer.h"

namespace terse {
namespace {

using test::Buffers;
using test::expect_invalid;

TEST(Lookahead, SgdK2TrajectoryByHand) {
  // sgd lr 0.5, k 2, alpha 0.5; every value below is exact in f32.
  Buffers b{{1.0f, 2.0f}, {0.0f, 0.0f}};
  auto opt = make_optimizer("lookahead:inner=sgd,k=2,alpha=0.5,lr=0.5", {b.param()});
  b.grad = {1.0f, 0.5f};
  opt->step();  // slow = {1, 2}; fast = {0.5, 1.75}
  EXPECT_EQ(b.value, (std::vector<float>{0.5f, 1.75f}));
  b.grad = {2.0f, -0.5f};
  opt->step();  // fast = {-0.5, 2}; slow += 0.5 (fast - slow) = {0.25, 2}; fast = slow
  EXPECT_EQ(b.value, (std::vector<float>{0.25f, 2.0f}));
  b.grad = {1.0f, 1.0f};
  opt->step();  // fast = {-0.25, 1.5}
  EXPECT_EQ(b.value, (std::vector<float>{-0.25f, 1.5f}));
  b.grad = {-2.0f, 1.0f};
  opt->step();  // fast = {0.75, 1}; slow = {0.25 + 0.25, 2 - 0.5} = {0.5, 1.5}
  EXPECT_EQ(b.value, (std::vector<float>{0.5f, 1.5f}));
  EXPECT_EQ(opt->step_count(), 4);
}

TEST(Lookahead, AlphaAboveHalfTakesTorchsOtherLerpBranch) {
  // alpha 0.75: weight 1 - alpha = 0.25 < 0.5, so p + 0.25 (s - p).
  Buffers b{{1.0f}, {1.0f}};
  auto opt = make_optimizer("lookahead:inner=sgd,k=1,alpha=0.75,lr=1", {b.param()});
  opt->step();  // fast 0, slow 1 -> 1 + 0.75 (0 - 1) = 0.25
  EXPECT_EQ(b.value[0], 0.25f);
}

TEST(Lookahead, AroundAdamIsAdamWithAveragedWeightsEveryK) {
  // Lookahead keeps adam's moments across a sync (pullback_momentum none), so a plain adam
  // whose weights are set to the interpolation every 2 steps follows the same trajectory.
  Buffers la{{0.5f, -1.0f, 2.0f}, {0, 0, 0}}, ref = la;
  auto opt =
      make_optimizer("lookahead:inner=adam,k=2,alpha=0.5,lr=0.01,betas=0.8/0.99", {la.param()});
  auto adam = make_optimizer("adam:lr=0.01,betas=0.8/0.99", {ref.param()});
  std::vector<float> slow = ref.value;
  for (int s = 1; s <= 6; ++s) {
    la.grad = {0.3f * s, -0.2f, 0.1f - 0.05f * s};
    ref.grad = la.grad;
    opt->step();
    adam->step();
    if (s % 2 == 0) {
      for (size_t i = 0; i < slow.size(); ++i) {
        slow[i] = ref.value[i] + 0.5f * (slow[i] - ref.value[i]);
        ref.value[i] = slow[i];
      }
    }
    for (size_t i = 0; i < slow.size(); ++i) EXPECT_FLOAT_EQ(la.value[i], ref.value[i]) << s;
  }
  EXPECT_NE(la.value[0], 0.5f);
}

TEST(Lookahead, K1Alpha1IsTheInnerOptimizerBitForBit) {
  Buffers la{{0.5f, -1.0f, 2.0f}, {0, 0, 0}}, ref = la;
  auto opt = make_optimizer("lookahead:inner=adam,k=1,alpha=1,lr=0.01", {la.param()});
  auto adam = make_optimizer("adam:lr=0.01", {ref.param()});
  for (int s = 1; s <= 5; ++s) {
    la.grad = {0.3f * s, -0.2f, 0.1f - 0.05f * s};
    ref.grad = la.grad;
    opt->step();
    adam->step();
  }
  EXPECT_EQ(la.value, ref.value);
}

TEST(Lookahead, Bf16ParamsHoldTheRoundedInterpolation) {
  std::vector<BFloat16> v = {to_bfloat16(1.0f)}, g = {to_bfloat16(1.0f)};
  const Param p{TensorView::of(v.data(), 1), TensorView::of(g.data(), 1), {1}, "w"};
  auto opt = make_optimizer("lookahead:inner=sgd,k=1,alpha=0.5,lr=0.00390625", {p});
  // fast = 1 - 2^-8 (exact in bf16); (1 + fast) / 2 = 1 - 2^-9 is a tie, rounded to even: 1.
  opt->step();
  EXPECT_EQ(to_float(v[0]), 1.0f);
  const StateDict sd = opt->state_dict();
  std::vector<float> slow(1);
  sd.tensor("slow.0").copy_to(TensorView::of(slow.data(), 1), "slow.0");
  EXPECT_EQ(slow[0], 1.0f);  // the slow copy is the stored (rounded) fast weight
}

TEST(Lookahead, ForwardsLrAndDescribesItself) {
  Buffers b{{1.0f}, {1.0f}};
  auto opt = make_optimizer("lookahead:inner=adam,lr=0.002", {b.param()});
  EXPECT_STREQ(opt->name(), "lookahead");
  const OptionMap o = opt->options();
  EXPECT_EQ(o.at("inner"), "adam");
  EXPECT_EQ(o.at("k"), "5");
  EXPECT_EQ(o.at("alpha"), "0.5");
  EXPECT_EQ(o.at("betas"), "0.9/0.999");
  EXPECT_DOUBLE_EQ(opt->lr(), 0.002);
  opt->scale_lr(0.5);
  EXPECT_DOUBLE_EQ(opt->lr(), 0.001);
  EXPECT_DOUBLE_EQ(opt->base_lr(), 0.002);
  opt->set_lr(0.1, 0);
  EXPECT_DOUBLE_EQ(opt->lr(), 0.1);
  EXPECT_EQ(opt->num_groups(), 1u);
}

TEST(Lookahead, BadOptionsNameTheOptionAndValue) {
  expect_invalid("lookahead:k=5", {"inner=NAME"});
  expect_invalid("lookahead:inner=adma", {"unknown optimizer 'adma'", "adam"});
  expect_invalid("lookahead:inner=lookahead", {"inner=lookahead is not supported"});
  expect_invalid("lookahead:inner=sgd,k=0", {"k must be an integer >= 1", "got 0"});
  expect_invalid("lookahead:inner=sgd,k=-3", {"k must be", "-3"});
  expect_invalid("lookahead:inner=sgd,k=2.5", {"'k'", "2.5", "not an integer"});
  expect_invalid("lookahead:inner=sgd,alpha=0", {"alpha must be in (0, 1]", "got 0"});
  expect_invalid("lookahead:inner=sgd,alpha=1.5", {"alpha must be in (0, 1]", "1.5"});
  expect_invalid("lookahead:inner=sgd,alpha=nan", {"alpha must be", "nan"});
  expect_invalid("lookahead:inner=sgd,pullback_momentum=reset", {"pullback_momentum", "reset"});
  // Options that are not lookahead's go to the inner optimizer, which rejects unknown ones.
  expect_invalid("lookahead:inner=adam,foo=1",
                 {"lookahead (inner=adam)", "unknown option 'foo'", "lr, betas",
                  "lookahead's own options are inner, k, alpha"});
  expect_invalid("lookahead:inner=adam,betas=1.5/0.9", {"betas must each be in [0, 1)", "1.5"});
}

TEST(Lookahead, StateRoundTripAndBytes) {
  const char* spec = "lookahead:inner=adam,k=2,alpha=0.5,lr=0.01";
  Buffers a{{0.5f, -1.0f, 2.0f}, {0.1f, -0.2f, 0.3f}}, copy = a;
  auto opt = make_optimizer(spec, {a.param("w")});
  EXPECT_EQ(opt->state_bytes(), 0u);
  // Before the first step there is no slow copy: the round trip keeps it that way.
  auto fresh = make_optimizer(spec, {copy.param("w")});
  fresh->load_state_dict(opt->state_dict());
  EXPECT_EQ(fresh->state_dict(), opt->state_dict());
  for (int s = 0; s < 3; ++s) opt->step();               // one sync, one step after it
  EXPECT_EQ(opt->state_bytes(), 3 * 3 * sizeof(float));  // adam's two moments + the slow copy
  const StateDict sd = opt->state_dict();
  EXPECT_EQ(sd.string_value("optimizer"), "lookahead");
  EXPECT_EQ(sd.string_value("inner.optimizer"), "adam");
  EXPECT_EQ(sd.int_value("lookahead.step"), 3);
  EXPECT_EQ(sd.tensor("slow.0").numel(), 3);
  EXPECT_EQ(sd.tensor("inner.state.0.exp_avg").numel(), 3);
  copy.value = a.value;
  auto resumed = make_optimizer(spec, {copy.param("w")});
  resumed->load_state_dict(sd);
  EXPECT_EQ(resumed->state_dict(), sd);
  EXPECT_EQ(resumed->step_count(), 3);
  for (int s = 0; s < 3; ++s) {  // crosses the next sync (after inner step 4) and one more
    a.grad = {-0.3f * s, 0.2f, 0.05f * s};
    copy.grad = a.grad;
    opt->step();
    resumed->step();
  }
  EXPECT_EQ(a.value, copy.value);
  EXPECT_EQ(opt->state_dict(), resumed->state_dict());
  // Neither a plain adam nor a lookahead around another optimizer takes this state.
  auto adam = make_optimizer("adam:lr=0.01", {copy.param("w")});
  EXPECT_THROW(adam->load_state_dict(sd), InvalidArgument);
  EXPECT_THROW(resumed->load_state_dict(adam->state_dict()), InvalidArgument);
  auto around_sgd = make_optimizer("lookahead:inner=sgd,k=2", {copy.param("w")});
  EXPECT_THROW(around_sgd->load_state_dict(sd), InvalidArgument);
  // A state dict without its slow weights is rejected and leaves the optimizer unchanged.
  StateDict damaged = sd;
  damaged.tensors.erase("slow.0");
  EXPECT_THROW(resumed->load_state_dict(damaged), InvalidArgument);
  EXPECT_EQ(resumed->state_dict(), opt->state_dict());
}

}  // namespace
}  // namespace terse

// ParamEma: hand-computed averages, timm's warm-up schedule, dtypes, options, state (spec
// optimizers.md §16).

#include "terse/optim/param_ema.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "optim_test_util.h"

namespace terse {
namespace {

using test::Buffers;

void expect_invalid_ema(const std::string& spec, const std::vector<std::string>& parts) {
  Buffers b{{1.0f}, {1.0f}};
  try {
    ParamEma::from_spec(spec, {b.param()});
    ADD_FAILURE() << spec << " was accepted";
  } catch (const InvalidArgument& e) {
    for (const auto& p : parts) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
          << spec << ": message lacks '" << p << "': " << e.what();
    }
  }
}

TEST(ParamEma, FirstUpdateCopiesThenAveragesByHand) {
  Buffers b{{1.0f, 2.0f}, {0, 0}};
  ParamEma ema = ParamEma::from_spec("decay=0.5", {b.param()});
  ema.update();  // d_1 = 0: a copy
  EXPECT_EQ(ema.average(0), (std::vector<float>{1.0f, 2.0f}));
  b.value = {3.0f, 0.0f};
  ema.update();  // 0.5 e + 0.5 x
  EXPECT_EQ(ema.average(0), (std::vector<float>{2.0f, 1.0f}));
  b.value = {5.0f, 1.0f};
  ema.update();
  EXPECT_EQ(ema.average(0), (std::vector<float>{3.5f, 1.0f}));
  EXPECT_EQ(ema.num_updates(), 3);

  Buffers c{{1.0f}, {0}};
  ParamEma slow = ParamEma::from_spec("decay=0.75", {c.param()});  // weight 0.25 < 0.5 branch
  slow.update();
  c.value = {3.0f};
  slow.update();  // 0.75 * 1 + 0.25 * 3
  EXPECT_EQ(slow.average(0)[0], 1.5f);
}

TEST(ParamEma, WarmupScheduleIsTimmsV3) {
  Buffers b{{1.0f}, {0}};
  // d_t = 1 - (1 + (t - 1) / gamma)^-power, clamped to [min_decay, decay].
  ParamEma warm = ParamEma::from_spec("warmup=true", {b.param()});
  EXPECT_EQ(warm.decay_at(1), 0.0);
  EXPECT_NEAR(warm.decay_at(2), 0.3700394750525634, 1e-15);   // 1 - 2^(-2/3)
  EXPECT_NEAR(warm.decay_at(10), 0.7845565309968117, 1e-15);  // 1 - 10^(-2/3)
  EXPECT_EQ(warm.options().at("decay"), "0.9999");
  EXPECT_EQ(warm.decay_at(100000000), 0.9999);  // capped at decay
  ParamEma power = ParamEma::from_spec("warmup=true,warmup_power=0.75", {b.param()});
  EXPECT_NEAR(power.decay_at(10), 0.8221720589961077, 1e-15);
  ParamEma gamma = ParamEma::from_spec("warmup=true,warmup_gamma=9", {b.param()});
  EXPECT_NEAR(gamma.decay_at(10), 1 - std::pow(2.0, -2.0 / 3.0), 1e-15);
  ParamEma floor = ParamEma::from_spec("warmup=true,decay=0.9,min_decay=0.5", {b.param()});
  EXPECT_EQ(floor.decay_at(2), 0.5);
  ParamEma late = ParamEma::from_spec("warmup=true,update_after_step=3", {b.param()});
  EXPECT_EQ(late.decay_at(4), 0.0);
  EXPECT_NEAR(late.decay_at(5), 0.3700394750525634, 1e-15);
  // Without warm-up: a copy at the first update, then the constant decay.
  ParamEma plain = ParamEma::from_spec("decay=0.999", {b.param()});
  EXPECT_EQ(plain.decay_at(1), 0.0);
  EXPECT_EQ(plain.decay_at(2), 0.999);
  EXPECT_EQ(plain.decay_at(10), 0.999);
}

TEST(ParamEma, WarmupDecayIsWhatUpdateUses) {
  Buffers b{{0.0f}, {0}};
  ParamEma ema = ParamEma::from_spec("warmup=true", {b.param()});
  ema.update();
  b.value = {1.0f};
  ema.update();  // d_2 = 1 - 2^(-2/3): e = 1 - d_2
  EXPECT_FLOAT_EQ(ema.average(0)[0], static_cast<float>(1 - 0.3700394750525634));
}

TEST(ParamEma, DecayZeroCopiesEveryDtype) {
  std::vector<Half> h = {to_half(0.1f), to_half(-3.0f)};
  std::vector<float> f = {0.25f, 7.0f};
  const Param ph{TensorView::of(h.data(), 2), TensorView{}, {2}, "h"};
  const Param pf{TensorView::of(f.data(), 2), TensorView{}, {2}, "f"};
  ParamEma ema = ParamEma::from_spec("decay=0", {ph, pf});
  for (int s = 0; s < 3; ++s) {
    h = {to_half(0.1f * s), to_half(-3.0f + s)};
    f = {0.25f * s, 7.0f - s};
    ema.update();
    EXPECT_EQ(ema.average(0), (std::vector<float>{to_float(h[0]), to_float(h[1])}));
    EXPECT_EQ(ema.average(1), f);
  }
}

TEST(ParamEma, LoadIntoParamsRoundsAndRestoreGivesThemBack) {
  std::vector<BFloat16> v = {to_bfloat16(1.0f)};
  const Param p{TensorView::of(v.data(), 1), TensorView{}, {1}, "w"};
  ParamEma ema = ParamEma::from_spec("decay=0.5", {p});
  EXPECT_THROW(ema.load_into_params(), InvalidArgument);  // nothing averaged yet
  ema.update();
  v[0] = to_bfloat16(1.0078125f);  // 1 + 2^-7, exact in bf16
  ema.update();
  EXPECT_EQ(ema.average(0)[0], 1.00390625f);  // f32 keeps 1 + 2^-8
  ema.load_into_params();
  EXPECT_EQ(ema.state_bytes(), sizeof(float) + sizeof(BFloat16));
  EXPECT_EQ(to_float(v[0]), 1.0f);  // 1 + 2^-8 is a tie in bf16: rounded to even
  EXPECT_THROW(ema.load_into_params(), InvalidArgument);
  EXPECT_THROW(ema.update(), InvalidArgument);
  ema.restore_params();
  EXPECT_EQ(to_float(v[0]), 1.0078125f);
  EXPECT_THROW(ema.restore_params(), InvalidArgument);
  EXPECT_EQ(ema.state_bytes(), sizeof(float));
}

TEST(ParamEma, BadOptionsNameTheOptionAndValue) {
  expect_invalid_ema("decay=1", {"decay must be in [0, 1)", "got 1"});
  expect_invalid_ema("decay=-0.1", {"decay must be in [0, 1)", "-0.1"});
  expect_invalid_ema("decay=nan", {"decay must be", "nan"});
  expect_invalid_ema("decay=fast", {"'decay'", "fast"});
  expect_invalid_ema("warmup=maybe", {"'warmup'", "maybe"});
  expect_invalid_ema("warmup_gamma=0", {"warmup_gamma must be", "got 0"});
  expect_invalid_ema("warmup_power=-1", {"warmup_power must be", "-1"});
  expect_invalid_ema("decay=0.9,min_decay=0.95", {"min_decay must be in [0, decay = 0.9]", "0.95"});
  expect_invalid_ema("update_after_step=-2", {"update_after_step must be >= 0", "-2"});
  expect_invalid_ema("momentum=0.9", {"unknown option 'momentum'", "decay, warmup"});
  expect_invalid_ema("decay", {"'decay' is not key=value", "decay=0.999"});
  expect_invalid_ema("decay=0.9,decay=0.99", {"sets 'decay' twice"});
  std::vector<double> d = {1.0};
  EXPECT_THROW(ParamEma({Param{TensorView::of(d.data(), 1), TensorView{}, {1}, "x"}}, {}),
               InvalidArgument);  // f64 parameters
}

TEST(ParamEma, StateRoundTripAndBytes) {
  Buffers a{{0.5f, -1.0f, 2.0f}, {0, 0, 0}}, copy = a;
  ParamEma ema = ParamEma::from_spec("decay=0.9,warmup=true", {a.param("w")});
  EXPECT_EQ(ema.state_bytes(), 0u);
  ParamEma fresh = ParamEma::from_spec("decay=0.9,warmup=true", {copy.param("w")});
  fresh.load_state_dict(ema.state_dict());  // before the first update: nothing to carry
  EXPECT_EQ(fresh.state_dict(), ema.state_dict());
  for (int s = 0; s < 3; ++s) {
    a.value = {0.5f + s, -1.0f * s, 2.0f};
    ema.update();
  }
  EXPECT_EQ(ema.state_bytes(), 3 * sizeof(float));
  const StateDict sd = ema.state_dict();
  EXPECT_EQ(sd.int_value("num_updates"), 3);
  EXPECT_EQ(sd.tensor("ema.0").numel(), 3);
  ParamEma resumed = ParamEma::from_spec("decay=0.9,warmup=true", {copy.param("w")});
  resumed.load_state_dict(sd);
  EXPECT_EQ(resumed.state_dict(), sd);
  copy.value = a.value;
  for (int s = 0; s < 3; ++s) {  // the warm-up continues from update 4 in both
    a.value = {0.1f * s, 3.0f, -2.0f * s};
    copy.value = a.value;
    ema.update();
    resumed.update();
  }
  EXPECT_EQ(ema.average(0), resumed.average(0));
  EXPECT_EQ(ema.state_dict(), resumed.state_dict());
  // Another model's parameter names or sizes are rejected, leaving the EMA unchanged.
  Buffers other{{1.0f, 2.0f, 3.0f}, {0, 0, 0}}, small{{1.0f}, {0}};
  ParamEma wrong_name = ParamEma::from_spec("decay=0.9", {other.param("v")});
  EXPECT_THROW(wrong_name.load_state_dict(sd), InvalidArgument);
  EXPECT_EQ(wrong_name.num_updates(), 0);
  ParamEma wrong_size = ParamEma::from_spec("decay=0.9", {small.param("w")});
  EXPECT_THROW(wrong_size.load_state_dict(sd), InvalidArgument);
  StateDict damaged = sd;
  damaged.tensors.erase("ema.0");
  EXPECT_THROW(resumed.load_state_dict(damaged), InvalidArgument);
  EXPECT_EQ(resumed.num_updates(), 6);
}

}  // namespace
}  // namespace terse

// Single steps computed by hand from torch.optim's formulas (spec optimizers.md §2-3).

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "optim_test_util.h"
#include "terse/optim/optimizer.h"

namespace terse {
namespace {

using test::Buffers;

TEST(SgdStep, PlainWithWeightDecay) {
  Buffers b{{1.0f, -2.0f}, {0.5f, 0.25f}};
  auto opt = make_optimizer("sgd:lr=0.1,weight_decay=0.01", {b.param()});
  opt->step();
  // d = g + 0.01 p; p -= 0.1 d
  EXPECT_FLOAT_EQ(b.value[0], 1.0f - 0.1f * (0.5f + 0.01f));
  EXPECT_FLOAT_EQ(b.value[1], -2.0f - 0.1f * (0.25f - 0.02f));
  EXPECT_EQ(opt->state_bytes(), 0u);  // momentum = 0 keeps no buffer, like torch
}

TEST(SgdStep, MomentumFirstStepIgnoresDampening) {
  Buffers b{{1.0f}, {2.0f}};
  auto opt = make_optimizer("sgd:lr=0.1,momentum=0.9,dampening=0.5", {b.param()});
  opt->step();  // b = g = 2 (no dampening on the first step); p = 1 - 0.2
  EXPECT_FLOAT_EQ(b.value[0], 0.8f);
  b.grad[0] = 1.0f;
  opt->step();  // b = 0.9 * 2 + 0.5 * 1 = 2.3; p = 0.8 - 0.23
  EXPECT_NEAR(b.value[0], 0.57f, 1e-6);
  EXPECT_EQ(opt->state_bytes(), sizeof(float));
}

TEST(SgdStep, Nesterov) {
  Buffers b{{1.0f}, {2.0f}};
  auto opt = make_optimizer("sgd:lr=0.1,momentum=0.9,nesterov=true", {b.param()});
  opt->step();  // b = 2; d = 2 + 0.9 * 2 = 3.8
  EXPECT_NEAR(b.value[0], 1.0f - 0.38f, 1e-6);
  b.grad[0] = -1.0f;
  opt->step();  // b = 1.8 - 1 = 0.8; d = -1 + 0.72 = -0.28
  EXPECT_NEAR(b.value[0], 0.62f + 0.028f, 1e-6);
}

TEST(SgdStep, MaximizeNegatesGradientBeforeWeightDecay) {
  Buffers b{{1.0f}, {2.0f}};
  auto opt = make_optimizer("sgd:lr=0.1,weight_decay=0.5,maximize=true", {b.param()});
  opt->step();  // d = -2 + 0.5 = -1.5; p = 1 + 0.15
  EXPECT_NEAR(b.value[0], 1.15f, 1e-6);
}

double adam_expected(double p, const std::vector<double>& grads, double lr, double b1, double b2,
                     double eps, double wd, bool decoupled, bool amsgrad) {
  double m = 0, v = 0, vmax = 0;
  for (size_t t = 1; t <= grads.size(); ++t) {
    double g = grads[t - 1];
    if (decoupled) {
      p *= 1 - lr * wd;
    } else {
      g += wd * p;
    }
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    vmax = std::max(vmax, v);
    const double bc1 = 1 - std::pow(b1, static_cast<double>(t));
    const double bc2 = 1 - std::pow(b2, static_cast<double>(t));
    p -= lr / bc1 * m / (std::sqrt(amsgrad ? vmax : v) / std::sqrt(bc2) + eps);
  }
  return p;
}

TEST(AdamStep, FirstStepMovesByLr) {
  Buffers b{{1.0f, 1.0f}, {0.3f, -4.0f}};
  auto opt = make_optimizer("adam:lr=0.01", {b.param()});
  opt->step();  // m_hat / sqrt(v_hat) = sign(g) on step 1
  EXPECT_NEAR(b.value[0], 0.99f, 1e-6);
  EXPECT_NEAR(b.value[1], 1.01f, 1e-6);
  EXPECT_EQ(opt->state_bytes(), 2 * 2 * sizeof(float));
}

TEST(AdamStep, ThreeStepsAgainstDoubleFormula) {
  const std::vector<double> grads = {0.5, -0.1, 0.02};
  struct Case {
    const char* spec;
    bool decoupled, amsgrad;
    double wd;
  } cases[] = {{"adam:lr=0.1,betas=0.8/0.9,weight_decay=0.1", false, false, 0.1},
               {"adamw:lr=0.1,betas=0.8/0.9,weight_decay=0.1", true, false, 0.1},
               {"adam:lr=0.1,betas=0.8/0.9,amsgrad=true", false, true, 0.0},
               {"adamw:lr=0.1,betas=0.8/0.9", true, false, 0.01}};  // adamw's default decay
  for (const auto& c : cases) {
    Buffers b{{1.5f}, {0.0f}};
    auto opt = make_optimizer(c.spec, {b.param()});
    for (double g : grads) {
      b.grad[0] = static_cast<float>(g);
      opt->step();
    }
    EXPECT_NEAR(b.value[0],
                adam_expected(1.5, grads, 0.1, 0.8, 0.9, 1e-8, c.wd, c.decoupled, c.amsgrad), 2e-6)
        << c.spec;
  }
}

TEST(AdamStep, AmsgradTakesMaxOfRawSecondMoment) {
  // A large gradient then small ones: v decays but vmax keeps the peak, so amsgrad moves less.
  const std::vector<double> grads = {3.0, 0.1, 0.1, 0.1};
  Buffers plain{{0.0f}, {0.0f}}, ams{{0.0f}, {0.0f}};
  auto a = make_optimizer("adam:lr=0.1,betas=0.5/0.5", {plain.param()});
  auto b = make_optimizer("adam:lr=0.1,betas=0.5/0.5,amsgrad=true", {ams.param()});
  for (double g : grads) {
    plain.grad[0] = ams.grad[0] = static_cast<float>(g);
    a->step();
    b->step();
  }
  EXPECT_NEAR(ams.value[0], adam_expected(0, grads, 0.1, 0.5, 0.5, 1e-8, 0, false, true), 1e-6);
  EXPECT_NEAR(plain.value[0], adam_expected(0, grads, 0.1, 0.5, 0.5, 1e-8, 0, false, false), 1e-6);
  EXPECT_GT(std::fabs(ams.value[0] - plain.value[0]), 1e-3);
  EXPECT_EQ(b->state_bytes(), 3 * sizeof(float));
}

TEST(AdamStep, MaximizeAscends) {
  Buffers b{{1.0f}, {0.5f}};
  auto opt = make_optimizer("adamw:lr=0.01,weight_decay=0,maximize=true", {b.param()});
  opt->step();
  EXPECT_NEAR(b.value[0], 1.01f, 1e-6);
}

TEST(OptimizerStep, LowPrecisionParamsUseF32Math) {
  std::vector<BFloat16> v = {to_bfloat16(1.0f)}, g = {to_bfloat16(0.5f)};
  std::vector<Half> hv = {to_half(1.0f)}, hg = {to_half(0.5f)};
  Param pb{TensorView::of(v.data(), 1), TensorView::of(g.data(), 1), {1}, "b"};
  Param ph{TensorView::of(hv.data(), 1), TensorView::of(hg.data(), 1), {1}, "h"};
  auto opt = make_optimizer("sgd:lr=0.25", {pb, ph});
  opt->step();
  EXPECT_EQ(to_float(v[0]), 0.875f);
  EXPECT_EQ(to_float(hv[0]), 0.875f);
}

TEST(OptimizerStep, LrChangesApplyOnNextStep) {
  Buffers b{{1.0f}, {1.0f}};
  auto opt = make_optimizer("sgd:lr=0.5", {b.param()});
  EXPECT_DOUBLE_EQ(opt->lr(), 0.5);
  opt->scale_lr(0.5);
  EXPECT_DOUBLE_EQ(opt->lr(), 0.25);
  EXPECT_DOUBLE_EQ(opt->base_lr(), 0.5);
  opt->step();
  EXPECT_FLOAT_EQ(b.value[0], 0.75f);
  opt->set_lr(0.125, 0);
  opt->step();
  EXPECT_FLOAT_EQ(b.value[0], 0.625f);
  EXPECT_EQ(opt->step_count(), 2);
  EXPECT_THROW(opt->set_lr(-1, 0), InvalidArgument);
  EXPECT_THROW(opt->set_lr(0.1, 1), InvalidArgument);
  EXPECT_THROW(opt->scale_lr(NAN), InvalidArgument);
}

}  // namespace
}  // namespace terse

#include "terse/optim/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "terse/core/error.h"

namespace terse {
namespace {

TEST(LrSchedule, Constant) {
  const LrSchedule s = make_lr_schedule("constant", 100);
  EXPECT_DOUBLE_EQ(s.factor(0), 1.0);
  EXPECT_DOUBLE_EQ(s.factor(1000), 1.0);
  EXPECT_EQ(s.str(), "constant");
  EXPECT_DOUBLE_EQ(LrSchedule().factor(5), 1.0);
}

TEST(LrSchedule, StepDecay) {
  const LrSchedule s = make_lr_schedule("step:step_size=10,gamma=0.5", 100);
  EXPECT_DOUBLE_EQ(s.factor(0), 1.0);
  EXPECT_DOUBLE_EQ(s.factor(9), 1.0);
  EXPECT_DOUBLE_EQ(s.factor(10), 0.5);
  EXPECT_DOUBLE_EQ(s.factor(25), 0.25);
  EXPECT_DOUBLE_EQ(make_lr_schedule("step:step_size=3", 10).factor(3), 0.1);  // torch's gamma
}

TEST(LrSchedule, CosineAtKnownSteps) {
  const LrSchedule s = make_lr_schedule("cosine", 100);
  EXPECT_DOUBLE_EQ(s.factor(0), 1.0);
  EXPECT_NEAR(s.factor(50), 0.5, 1e-12);
  EXPECT_NEAR(s.factor(25), 0.5 * (1 + std::cos(M_PI / 4)), 1e-12);
  EXPECT_NEAR(s.factor(100), 0.0, 1e-12);
  EXPECT_NEAR(s.factor(150), 0.0, 1e-12);  // stays at the floor after the planned end
  const LrSchedule m = make_lr_schedule("cosine:min_factor=0.1", 100);
  EXPECT_NEAR(m.factor(50), 0.55, 1e-12);
  EXPECT_NEAR(m.factor(100), 0.1, 1e-12);
}

TEST(LrSchedule, WarmupThenCosine) {
  const LrSchedule s = make_lr_schedule("cosine:warmup=4", 104);
  EXPECT_DOUBLE_EQ(s.factor(0), 0.25);
  EXPECT_DOUBLE_EQ(s.factor(1), 0.5);
  EXPECT_DOUBLE_EQ(s.factor(3), 1.0);
  EXPECT_DOUBLE_EQ(s.factor(4), 1.0);  // cosine starts at its top
  EXPECT_NEAR(s.factor(54), 0.5, 1e-12);
  EXPECT_EQ(s.warmup_steps(), 4);
  EXPECT_EQ(s.str(), "cosine:min_factor=0,warmup=4");
  const LrSchedule c = make_lr_schedule("constant:warmup=2", 0);
  EXPECT_DOUBLE_EQ(c.factor(0), 0.5);
  EXPECT_DOUBLE_EQ(c.factor(7), 1.0);
  const LrSchedule st = make_lr_schedule("step:step_size=5,gamma=0.1,warmup=5", 100);
  EXPECT_DOUBLE_EQ(st.factor(4), 1.0);
  EXPECT_DOUBLE_EQ(st.factor(9), 1.0);
  EXPECT_NEAR(st.factor(10), 0.1, 1e-15);
}

void expect_invalid(const std::string& spec, int64_t total, const std::string& part) {
  try {
    make_lr_schedule(spec, total);
    ADD_FAILURE() << spec << " was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(LrSchedule, BadSpecsNameTheProblem) {
  expect_invalid("linear", 10, "constant, step");
  expect_invalid("cosine:gamma=0.1", 10, "valid keys are: min_factor, warmup");
  expect_invalid("step", 10, "needs step_size");
  expect_invalid("step:step_size=0", 10, "step_size must be >= 1");
  expect_invalid("step:step_size=2.5", 10, "not an integer");
  expect_invalid("step:step_size=2,gamma=0", 10, "gamma must be");
  expect_invalid("cosine:min_factor=1.5", 10, "min_factor must be in [0, 1]");
  expect_invalid("cosine:warmup=-1", 10, "warm-up steps must be >= 0");
  expect_invalid("cosine:warmup=10", 10, "total steps > warm-up");
  expect_invalid("cosine", 0, "total steps > warm-up");
  expect_invalid("cosine:warmup", 10, "not key=value");
  expect_invalid("cosine:warmup=1,warmup=2", 10, "twice");
  EXPECT_THROW(make_lr_schedule("constant", 1).factor(-1), InvalidArgument);
}

}  // namespace
}  // namespace terse

#include "terse/compress/dgc/dgc_warmup.h"

#include <gtest/gtest.h>

#include "terse/core/error.h"

namespace terse {
namespace {

TEST(DgcWarmup, PaperSchedule) {
  const DgcWarmup w = DgcWarmup::paper(0.001);
  EXPECT_DOUBLE_EQ(dgc_density(0, w), 0.25);        // 75% sparsity
  EXPECT_DOUBLE_EQ(dgc_density(1, w), 0.0625);      // 93.75%
  EXPECT_DOUBLE_EQ(dgc_density(2, w), 0.015625);    // 98.4375%
  EXPECT_DOUBLE_EQ(dgc_density(3, w), 0.00390625);  // 99.6%
  EXPECT_DOUBLE_EQ(dgc_density(4, w), 0.001);       // 99.9%
  EXPECT_DOUBLE_EQ(dgc_density(90, w), 0.001);
}

TEST(DgcWarmup, ReferenceCodeSchedule) {
  const DgcWarmup w = DgcWarmup::reference(0.001, 5);
  const double expect[] = {0.316227766, 0.1, 0.0316227766, 0.01, 0.00316227766, 0.001, 0.001};
  for (int e = 0; e < 7; ++e) EXPECT_NEAR(dgc_density(e, w), expect[e], 1e-9) << e;
}

TEST(DgcWarmup, NoWarmupAndFloor) {
  EXPECT_DOUBLE_EQ(dgc_density(0, DgcWarmup::reference(0.01, 0)), 0.01);
  // coeff^(e+1) never goes below the final density.
  const DgcWarmup w{0.1, 3, 0.25};
  EXPECT_DOUBLE_EQ(dgc_density(0, w), 0.25);
  EXPECT_DOUBLE_EQ(dgc_density(1, w), 0.1);
  EXPECT_DOUBLE_EQ(dgc_density(2, w), 0.1);
}

TEST(DgcWarmup, RejectsBadInput) {
  EXPECT_THROW(dgc_density(-1, DgcWarmup::paper(0.001)), InvalidArgument);
  EXPECT_THROW(dgc_density(0, DgcWarmup{0.0, 1, 0.0}), InvalidArgument);
  EXPECT_THROW(dgc_density(0, DgcWarmup{0.001, -1, 0.0}), InvalidArgument);
  EXPECT_THROW(dgc_density(0, DgcWarmup{0.001, 1, 1.5}), InvalidArgument);
}

}  // namespace
}  // namespace terse

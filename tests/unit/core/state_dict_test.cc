#include "terse/core/state_dict.h"

#include <gtest/gtest.h>

#include "terse/core/error.h"

namespace terse {
namespace {

TEST(StateDict, CopyRoundTripAndMismatch) {
  float src[3] = {1, 2, 3};
  const StateTensor t = StateTensor::copy_of(TensorView::of(src, 3));
  EXPECT_EQ(t.numel(), 3);
  float dst[3] = {};
  t.copy_to(TensorView::of(dst, 3), "m");
  EXPECT_EQ(dst[2], 3.0f);
  float small[2];
  EXPECT_THROW(t.copy_to(TensorView::of(small, 2), "m"), InvalidArgument);
}

TEST(StateDict, MissingKeysAreCorruptData) {
  StateDict d;
  d.ints["step"] = 3;
  EXPECT_EQ(d.int_value("step"), 3);
  EXPECT_THROW(d.int_value("nope"), CorruptData);
  EXPECT_THROW(d.tensor("m"), CorruptData);
  StateDict e = d;
  EXPECT_TRUE(d == e);
  e.floats["lr"] = 0.1;
  EXPECT_FALSE(d == e);
}

}  // namespace
}  // namespace terse

#include "terse/core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "terse/core/dispatch.h"
#include "terse/core/error.h"
#include "terse/core/tensor_view.h"

namespace terse {
namespace {

TEST(DType, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::kF32), 4u);
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
  EXPECT_EQ(dtype_size(DType::kF16), 2u);
  EXPECT_EQ(dtype_from_name("bfloat16"), DType::kBF16);
  EXPECT_THROW(dtype_from_name("f8"), InvalidArgument);
}

TEST(DType, BFloat16RoundsToNearestEven) {
  EXPECT_EQ(to_bfloat16(1.0f).bits, 0x3f80);
  // 1 + 2^-8 is exactly halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even (1).
  EXPECT_EQ(to_bfloat16(1.0f + 1.0f / 256).bits, 0x3f80);
  // 1 + 3*2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
  EXPECT_EQ(to_bfloat16(1.0f + 3.0f / 256).bits, 0x3f82);
  EXPECT_TRUE(std::isnan(to_float(to_bfloat16(std::nanf("")))));
  EXPECT_EQ(to_float(to_bfloat16(-2.5f)), -2.5f);
}

TEST(DType, HalfRoundTripsEveryValue) {
  // Every finite f16 value converts to f32 and back unchanged.
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    const Half h{static_cast<uint16_t>(b)};
    const float f = to_float(h);
    if (std::isnan(f)) continue;
    EXPECT_EQ(to_half(f).bits, h.bits) << "bits " << b;
  }
}

TEST(DType, HalfKnownValues) {
  EXPECT_EQ(to_half(1.0f).bits, 0x3c00);
  EXPECT_EQ(to_half(65504.0f).bits, 0x7bff);
  EXPECT_EQ(to_half(1e6f).bits, 0x7c00);  // overflow to inf
  EXPECT_EQ(to_half(5.9604644775390625e-08f).bits, 0x0001);  // smallest subnormal
  EXPECT_EQ(to_half(2.98e-08f).bits, 0x0000);                // below half of it: zero
  EXPECT_EQ(to_float(Half{0x3555}), 0.333251953125f);
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even.
  EXPECT_EQ(to_half(1.0f + 1.0f / 2048).bits, 0x3c00);
}

TEST(TensorView, TypedAccessChecksDType) {
  float x[4] = {1, 2, 3, 4};
  TensorView v = TensorView::of(x, 4);
  EXPECT_EQ(v.as<float>()[2], 3.0f);
  EXPECT_THROW(v.as<Half>(), InvalidArgument);
  EXPECT_EQ(v.slice(1, 2).as<float>()[0], 2.0f);
  EXPECT_THROW(v.slice(3, 2), InvalidArgument);
  EXPECT_EQ(v.nbytes(), 16u);
}

TEST(Dispatch, PicksStorageType) {
  EXPECT_EQ(dispatch_floating(DType::kBF16, [](auto t) { return sizeof(t); }), 2u);
  EXPECT_THROW(dispatch_floating(DType::kI32, [](auto t) { return sizeof(t); }),
               InvalidArgument);
}

}  // namespace
}  // namespace terse

#include "terse/torch/view_of.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "terse/core/error.h"

namespace terse::torch_adapter {
namespace {

TEST(ViewOf, PointsAtTheTensorStorage) {
  at::Tensor t = at::arange(12, at::kFloat).reshape({3, 4});
  const TensorView v = view_of(t);
  EXPECT_EQ(v.data, storage_ptr(t));
  EXPECT_EQ(v.numel, 12);
  EXPECT_EQ(v.dtype, DType::kF32);
  EXPECT_TRUE(v.device.is_cpu());
  v.as<float>()[5] = 42.0f;  // writes land in the tensor
  EXPECT_EQ(t[1][1].item<float>(), 42.0f);
}

TEST(ViewOf, HalfPrecisionDtypes) {
  EXPECT_EQ(view_of(at::zeros({4}, at::kBFloat16)).dtype, DType::kBF16);
  EXPECT_EQ(view_of(at::zeros({4}, at::kHalf)).dtype, DType::kF16);
  EXPECT_EQ(scalar_type_of(DType::kBF16), at::kBFloat16);
  EXPECT_EQ(dtype_of_scalar_type(at::kHalf), DType::kF16);
}

TEST(ViewOf, RejectsWhatItCannotView) {
  EXPECT_THROW(view_of(at::Tensor()), InvalidArgument);
  EXPECT_THROW(view_of(at::zeros({4}, at::kDouble)), InvalidArgument);
  EXPECT_THROW(view_of(at::zeros({4}, at::kInt)), InvalidArgument);
  const at::Tensor t = at::zeros({3, 4}).t();
  try {
    view_of(t);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("contiguous"), std::string::npos) << e.what();
  }
  // A contiguous slice is fine and starts at its own offset.
  const at::Tensor base = at::arange(10, at::kFloat);
  const TensorView v = view_of(base.slice(0, 2, 6));
  EXPECT_EQ(v.numel, 4);
  EXPECT_EQ(v.as<float>()[0], 2.0f);
}

}  // namespace
}  // namespace terse::torch_adapter

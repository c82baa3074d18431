#include "terse/train/bucket_plan.h"

#include <gtest/gtest.h>

#include <cmath>

#include "terse/core/error.h"

namespace terse {
namespace {

using Info = BucketPlan::ParamInfo;
constexpr double kMB = 1024.0 * 1024.0;

TEST(BucketPlan, ReverseRegistrationOrderAndCap) {
  // 4 f32 params of 100 elements = 400 bytes each; cap 1000 bytes: a bucket closes once it
  // holds >= 1000 bytes, i.e. after 3 params.
  std::vector<Info> params(4, Info{100, DType::kF32});
  BucketPlan plan(params, 1000.0 / kMB);
  ASSERT_EQ(plan.num_buckets(), 2u);
  EXPECT_EQ(plan.buckets()[0].params, (std::vector<size_t>{3, 2, 1}));
  EXPECT_EQ(plan.buckets()[0].numel, 300);
  EXPECT_EQ(plan.buckets()[1].params, (std::vector<size_t>{0}));
  EXPECT_EQ(plan.buckets()[1].numel, 100);
  EXPECT_EQ(plan.slot(3).bucket, 0u);
  EXPECT_EQ(plan.slot(3).offset, 0);
  EXPECT_EQ(plan.slot(2).offset, 100);
  EXPECT_EQ(plan.slot(1).offset, 200);
  EXPECT_EQ(plan.slot(0).bucket, 1u);
  EXPECT_EQ(plan.slot(0).offset, 0);
  EXPECT_EQ(plan.slot(0).numel, 100);
}

TEST(BucketPlan, ExactCapClosesBucket) {
  std::vector<Info> params(4, Info{256, DType::kF32});  // 1 KiB each
  BucketPlan plan(params, 2048.0 / kMB);
  ASSERT_EQ(plan.num_buckets(), 2u);
  EXPECT_EQ(plan.buckets()[0].params, (std::vector<size_t>{3, 2}));
  EXPECT_EQ(plan.buckets()[1].params, (std::vector<size_t>{1, 0}));
  EXPECT_EQ(plan.buckets()[1].nbytes(), 2048u);
}

TEST(BucketPlan, LargeParamGetsOwnBucket) {
  std::vector<Info> params = {{10, DType::kF32}, {1000000, DType::kF32}, {10, DType::kF32}};
  BucketPlan plan(params, 1.0);  // 1 MiB; the middle tensor is ~3.8 MiB
  ASSERT_EQ(plan.num_buckets(), 2u);
  EXPECT_EQ(plan.buckets()[0].params, (std::vector<size_t>{2, 1}));
  EXPECT_EQ(plan.buckets()[1].params, (std::vector<size_t>{0}));
}

TEST(BucketPlan, OneDtypePerBucket) {
  std::vector<Info> params = {
      {8, DType::kF32}, {8, DType::kBF16}, {8, DType::kF32}, {8, DType::kF16}};
  BucketPlan plan(params, 25.0);
  ASSERT_EQ(plan.num_buckets(), 3u);
  // Opened in the order their dtypes first appear walking backwards: f16, f32, bf16.
  EXPECT_EQ(plan.buckets()[0].dtype, DType::kF16);
  EXPECT_EQ(plan.buckets()[1].dtype, DType::kF32);
  EXPECT_EQ(plan.buckets()[1].params, (std::vector<size_t>{2, 0}));
  EXPECT_EQ(plan.buckets()[2].dtype, DType::kBF16);
  EXPECT_EQ(plan.buckets()[2].nbytes(), 16u);
  EXPECT_EQ(plan.slot(0).offset, 8);
}

TEST(BucketPlan, ZeroSizedParamIsPlaced) {
  BucketPlan plan({{0, DType::kF32}, {4, DType::kF32}}, 25.0);
  ASSERT_EQ(plan.num_buckets(), 1u);
  EXPECT_EQ(plan.slot(0).numel, 0);
  EXPECT_EQ(plan.slot(0).offset, 4);
}

TEST(BucketPlan, RejectsBadInput) {
  EXPECT_THROW(BucketPlan({{4, DType::kF32}}, 0.0), InvalidArgument);
  EXPECT_THROW(BucketPlan({{4, DType::kF32}}, -1.0), InvalidArgument);
  EXPECT_THROW(BucketPlan({{4, DType::kF32}}, std::nan("")), InvalidArgument);
  EXPECT_THROW(BucketPlan({{-1, DType::kF32}}, 1.0), InvalidArgument);
  EXPECT_THROW(BucketPlan({{4, DType::kI32}}, 1.0), InvalidArgument);
  BucketPlan plan({{4, DType::kF32}}, 1.0);
  EXPECT_THROW(plan.slot(1), InvalidArgument);
}

}  // namespace
}  // namespace terse

#include "terse/torch/model_zoo.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/utils.h>

#include "terse/core/error.h"

namespace terse::torch_adapter {
namespace {

int64_t count_params(torch::nn::Sequential& m) {
  int64_t n = 0;
  for (const auto& p : m->parameters()) n += p.numel();
  return n;
}

TEST(ModelZoo, MlpShapesAndSize) {
  torch::nn::Sequential m = make_model("mlp");
  EXPECT_EQ(m->forward(at::randn({5, 1, 28, 28})).sizes(), (std::vector<int64_t>{5, 10}));
  EXPECT_EQ(count_params(m), 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
  EXPECT_EQ(m->parameters().size(), 6u);
}

TEST(ModelZoo, WideMlpShapesAndSize) {
  torch::nn::Sequential m = make_model("wide-mlp");
  EXPECT_EQ(m->forward(at::randn({2, 1, 28, 28})).sizes(), (std::vector<int64_t>{2, 10}));
  EXPECT_EQ(count_params(m), 784 * 2048 + 2048 + 2048 * 2048 + 2048 + 2048 * 10 + 10);
}

TEST(ModelZoo, CnnShapesAndSize) {
  torch::nn::Sequential m = make_model("cnn");
  EXPECT_EQ(m->forward(at::randn({3, 1, 28, 28})).sizes(), (std::vector<int64_t>{3, 10}));
  EXPECT_EQ(count_params(m), (32 * 9 + 32) + (64 * 32 * 9 + 64) + (3136 * 128 + 128) + 1290);
}

TEST(ModelZoo, SeededInitIsReproducible) {
  torch::manual_seed(7);
  torch::nn::Sequential a = make_model("cnn");
  torch::manual_seed(7);
  torch::nn::Sequential b = make_model("cnn");
  const auto pa = a->parameters(), pb = b->parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(pa[i].equal(pb[i]));
}

TEST(ModelZoo, UnknownNameListsKnownOnes) {
  try {
    make_model("resnet");
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("mlp, wide-mlp, cnn"), std::string::npos) << e.what();
  }
  EXPECT_EQ(model_names(), (std::vector<std::string>{"mlp", "wide-mlp", "cnn"}));
}

}  // namespace
}  // namespace terse::torch_adapter

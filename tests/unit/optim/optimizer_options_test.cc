// Options: defaults as in torch.optim, per-group overrides, spec parsing and every rejection.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "optim_test_util.h"
#include "terse/optim/optimizer.h"

namespace terse {
namespace {

using test::expect_invalid;

struct Tensor {
  explicit Tensor(size_t n, float v = 1.0f) : value(n, v), grad(n, 1.0f) {}
  std::vector<float> value, grad;
  Param param(const std::string& name = "") {
    return Param{TensorView::of(value.data(), static_cast<int64_t>(value.size())),
                 TensorView::of(grad.data(), static_cast<int64_t>(grad.size())),
                 {static_cast<int64_t>(value.size())},
                 name};
  }
};

TEST(OptimizerOptions, TorchDefaults) {
  Tensor t(2);
  auto sgd = make_optimizer("sgd", {t.param()});
  const OptionMap s = sgd->options();
  EXPECT_EQ(s.at("lr"), "0.001");
  EXPECT_EQ(s.at("momentum"), "0");
  EXPECT_EQ(s.at("dampening"), "0");
  EXPECT_EQ(s.at("weight_decay"), "0");
  EXPECT_EQ(s.at("nesterov"), "false");
  EXPECT_EQ(s.at("maximize"), "false");
  EXPECT_EQ(s.size(), 6u);
  auto adam = make_optimizer("adam", {t.param()});
  const OptionMap a = adam->options();
  EXPECT_EQ(a.at("lr"), "0.001");
  EXPECT_EQ(a.at("betas"), "0.9/0.999");
  EXPECT_EQ(a.at("eps"), "1e-08");
  EXPECT_EQ(a.at("weight_decay"), "0");
  EXPECT_EQ(a.at("amsgrad"), "false");
  EXPECT_EQ(a.at("maximize"), "false");
  auto adamw = make_optimizer("adamw", {t.param()});
  EXPECT_EQ(adamw->options().at("weight_decay"), "0.01");
  EXPECT_STREQ(adamw->name(), "adamw");
  EXPECT_EQ(optimizer_names(),
            (std::vector<std::string>{"sgd", "adam", "adamw", "lion", "adabelief", "lookahead"}));
}

TEST(OptimizerOptions, SpecParse) {
  const OptimizerSpec s = OptimizerSpec::parse("adamw:lr=1e-3, betas=0.9/0.95");
  EXPECT_EQ(s.name, "adamw");
  EXPECT_EQ(s.options.at("lr"), "1e-3");
  EXPECT_EQ(s.options.at("betas"), "0.9/0.95");
  EXPECT_EQ(s.str(), "adamw:betas=0.9/0.95,lr=1e-3");
  EXPECT_EQ(OptimizerSpec::parse("sgd").options.size(), 0u);
  EXPECT_EQ(OptimizerSpec::parse("sgd:").options.size(), 0u);
  EXPECT_THROW(OptimizerSpec::parse(""), InvalidArgument);
  EXPECT_THROW(OptimizerSpec::parse(":lr=1"), InvalidArgument);
  EXPECT_THROW(OptimizerSpec::parse("sgd:lr"), InvalidArgument);
  EXPECT_THROW(OptimizerSpec::parse("sgd:lr=0.1,"), InvalidArgument);
  EXPECT_THROW(OptimizerSpec::parse("sgd:=0.1"), InvalidArgument);
  EXPECT_THROW(OptimizerSpec::parse("sgd:lr=0.1,lr=0.2"), InvalidArgument);
  Tensor t(2);
  auto opt = make_optimizer("adamw:lr=1e-3,betas=0.9/0.95", {t.param()});
  EXPECT_EQ(opt->options().at("betas"), "0.9/0.95");
}

TEST(OptimizerOptions, EveryBadOptionIsRejected) {
  expect_invalid("lamb:lr=1", {"unknown optimizer 'lamb'", "sgd, adam, adamw"});
  expect_invalid("sgd:betas=0.9/0.99", {"unknown option 'betas'", "lr, momentum, dampening"});
  expect_invalid("adam:momentum=0.9", {"unknown option 'momentum'", "betas, eps"});
  expect_invalid("sgd:lr=fast", {"'lr'", "'fast'", "not a number"});
  expect_invalid("sgd:lr=0.1x", {"'lr'", "not a number"});
  expect_invalid("sgd:nesterov=yes,momentum=0.9", {"'nesterov'", "'yes'", "true or false"});
  expect_invalid("adam:betas=0.9", {"'betas'", "a/b"});
  expect_invalid("adam:betas=0.9/0.99/0.5", {"'betas'", "a/b"});
  expect_invalid("sgd:lr=-0.1", {"lr must be", "-0.1"});
  expect_invalid("sgd:lr=inf", {"lr must be", "inf"});
  expect_invalid("sgd:lr=nan", {"lr must be"});
  expect_invalid("sgd:momentum=1", {"momentum must be in [0, 1)", "got 1"});
  expect_invalid("sgd:momentum=-0.5", {"momentum must be in [0, 1)"});
  expect_invalid("sgd:dampening=2,momentum=0.9", {"dampening must be in [0, 1]"});
  expect_invalid("sgd:weight_decay=-1", {"weight_decay must be", "-1"});
  expect_invalid("sgd:nesterov=true", {"nesterov=true needs momentum > 0"});
  expect_invalid("sgd:nesterov=true,momentum=0.9,dampening=0.1", {"dampening=0.1"});
  expect_invalid("adam:betas=1/0.999", {"betas must each be in [0, 1)", "1/0.999"});
  expect_invalid("adamw:betas=0.9/-0.1", {"betas must each be in [0, 1)"});
  expect_invalid("adam:eps=0", {"eps must be", "got 0"});
  expect_invalid("adam:eps=-1e-8", {"eps must be"});
  expect_invalid("adamw:weight_decay=-0.01", {"weight_decay must be"});
}

TEST(OptimizerOptions, BadParametersAreRejected) {
  Tensor a(4), b(3);
  Param mismatched = a.param("w");
  mismatched.grad.numel = 3;
  EXPECT_THROW(make_optimizer("sgd", {mismatched}), InvalidArgument);
  std::vector<BFloat16> g16(4);
  Param dtype_mismatch = a.param("w");
  dtype_mismatch.grad = TensorView::of(g16.data(), 4);
  EXPECT_THROW(make_optimizer("sgd", {dtype_mismatch}), InvalidArgument);
  std::vector<int32_t> ints(4);
  Param int_param{TensorView::of(ints.data(), 4), TensorView::of(ints.data(), 4), {}, "i"};
  EXPECT_THROW(make_optimizer("sgd", {int_param}), InvalidArgument);
  Param no_grad = a.param("w");
  no_grad.grad.data = nullptr;
  EXPECT_THROW(make_optimizer("sgd", {no_grad}), InvalidArgument);
  EXPECT_THROW(make_optimizer("sgd", {a.param("w"), a.param("w again")}), InvalidArgument);
  Param bad_shape = b.param("b");
  bad_shape.shape = {2, 2};
  EXPECT_THROW(make_optimizer("sgd", {bad_shape}), InvalidArgument);
  Param on_gpu = b.param("g");
  on_gpu.value.device = Device::cuda(0);
  EXPECT_THROW(make_optimizer("sgd", {on_gpu}), InvalidArgument);
  EXPECT_THROW(make_optimizer(OptimizerSpec::parse("sgd"), {}), InvalidArgument);
}

TEST(OptimizerOptions, GroupsWithOverrides) {
  Tensor a(2, 1.0f), b(2, 1.0f);
  std::vector<ParamGroup> groups(2);
  groups[0].params = {a.param("a")};
  groups[1].params = {b.param("b")};
  groups[1].overrides = {{"lr", "0.5"}, {"momentum", "0"}};
  auto opt = make_optimizer(OptimizerSpec::parse("sgd:lr=0.1,momentum=0.9"), groups);
  ASSERT_EQ(opt->num_groups(), 2u);
  EXPECT_DOUBLE_EQ(opt->lr(0), 0.1);
  EXPECT_DOUBLE_EQ(opt->lr(1), 0.5);
  EXPECT_EQ(opt->options(0).at("momentum"), "0.9");
  EXPECT_EQ(opt->options(1).at("momentum"), "0");
  opt->step();
  EXPECT_FLOAT_EQ(a.value[0], 0.9f);
  EXPECT_FLOAT_EQ(b.value[0], 0.5f);
  EXPECT_EQ(opt->state_bytes(), 2 * sizeof(float));  // only group 0 keeps a momentum buffer
  opt->scale_lr(0.5);
  EXPECT_DOUBLE_EQ(opt->lr(0), 0.05);
  EXPECT_DOUBLE_EQ(opt->lr(1), 0.25);
  EXPECT_THROW(opt->lr(2), InvalidArgument);
  EXPECT_THROW(opt->options(2), InvalidArgument);

  std::vector<ParamGroup> bad(1);
  bad[0].params = {a.param("a")};
  bad[0].overrides = {{"betas", "0.9/0.9"}};
  EXPECT_THROW(make_optimizer(OptimizerSpec::parse("sgd"), bad), InvalidArgument);
  bad[0].overrides = {{"lr", "-1"}};
  EXPECT_THROW(make_optimizer(OptimizerSpec::parse("sgd"), bad), InvalidArgument);
}

}  // namespace
}  // namespace terse

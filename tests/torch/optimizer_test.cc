#include "terse/torch/optimizer.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/sgd.h>
#include <torch/serialize.h>
#include <torch/utils.h>

#include <sstream>

#include "terse/torch/model_zoo.h"
#include "terse/torch/view_of.h"

namespace terse::torch_adapter {
namespace {

// A fixed batch; `k` varies it per step.
at::Tensor loss_of(torch::nn::Sequential& m, int k) {
  at::Tensor x = at::sin(at::arange(16 * 784, at::kFloat).reshape({16, 1, 28, 28}).mul(0.01 * k));
  at::Tensor y = at::arange(16, at::kLong).add(k).remainder(10);
  return torch::nn::functional::cross_entropy(m->forward(x), y);
}

std::vector<at::Tensor> snapshot(const torch::nn::Sequential& m) {
  std::vector<at::Tensor> out;
  for (const auto& p : m->parameters()) out.push_back(p.detach().clone());
  return out;
}

torch::nn::Sequential seeded_mlp() {
  torch::manual_seed(11);
  return make_model("mlp");
}

// The wrapper, driven the torch way, gives exactly what the terse optimizer gives when it is
// stepped directly on the same parameters and gradients.
TEST(TorchOptimizer, MatchesTerseOptimizerSteppedDirectly) {
  for (const char* spec : {"adam:lr=0.01", "sgd:lr=0.1,momentum=0.9,nesterov=true"}) {
    torch::nn::Sequential a = seeded_mlp(), b = seeded_mlp();
    Optimizer wrapped(a->parameters(), spec);

    std::vector<at::Tensor> grads;
    std::vector<Param> params;
    for (const auto& p : b->parameters()) {
      grads.push_back(at::zeros_like(p));
      params.push_back(Param{view_of(p), view_of(grads.back()),
                             std::vector<int64_t>(p.sizes().begin(), p.sizes().end()), ""});
    }
    std::unique_ptr<::terse::Optimizer> direct = make_optimizer(spec, params);

    for (int k = 1; k <= 5; ++k) {
      wrapped.zero_grad();
      loss_of(a, k).backward();
      wrapped.step();

      for (auto& p : b->parameters()) p.mutable_grad() = at::Tensor();
      loss_of(b, k).backward();
      for (size_t i = 0; i < grads.size(); ++i) grads[i].copy_(b->parameters()[i].grad());
      direct->step();
    }
    const auto pa = snapshot(a), pb = snapshot(b);
    for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(pa[i].equal(pb[i])) << spec << " " << i;
    EXPECT_FALSE(pa[0].equal(snapshot(seeded_mlp())[0])) << "parameters did not move";
    EXPECT_EQ(wrapped.inner().step_count(), 5);
  }
}

TEST(TorchOptimizer, SgdMatchesTorchSgd) {
  torch::nn::Sequential a = seeded_mlp(), b = seeded_mlp();
  Optimizer ours(a->parameters(), "sgd:lr=0.05,momentum=0.9,weight_decay=0.0001,dampening=0.1");
  torch::optim::SGD theirs(
      b->parameters(),
      torch::optim::SGDOptions(0.05).momentum(0.9).weight_decay(0.0001).dampening(0.1));
  for (int k = 1; k <= 10; ++k) {
    ours.zero_grad();
    loss_of(a, k).backward();
    ours.step();
    theirs.zero_grad();
    loss_of(b, k).backward();
    theirs.step();
  }
  const auto pa = snapshot(a), pb = snapshot(b);
  for (size_t i = 0; i < pa.size(); ++i) {
    const double diff = (pa[i] - pb[i]).abs().max().item<double>();
    EXPECT_LT(diff, 1e-6) << "param " << i;
  }
  EXPECT_FALSE(pa[0].equal(snapshot(seeded_mlp())[0]));
}

TEST(TorchOptimizer, LrFromParamGroupOptions) {
  torch::nn::Sequential a = seeded_mlp();
  Optimizer opt(a->parameters(), "sgd:lr=0.1");
  EXPECT_EQ(opt.param_groups()[0].options().get_lr(), 0.1);
  opt.param_groups()[0].options().set_lr(0.0);  // lr 0: a step changes nothing
  const auto before = snapshot(a);
  loss_of(a, 1).backward();
  opt.step();
  EXPECT_EQ(opt.inner().lr(0), 0.0);
  const auto after = snapshot(a);
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(before[i].equal(after[i]));
  opt.param_groups()[0].options().set_lr(0.1);
  opt.step();
  EXPECT_FALSE(snapshot(a)[0].equal(before[0]));
}

TEST(TorchOptimizer, PerGroupOptions) {
  torch::nn::Sequential a = seeded_mlp(), b = seeded_mlp();
  // Group 1 (biases) with lr 0: they must not move while the weights do.
  std::vector<at::Tensor> weights, biases;
  for (const auto& item : a->named_parameters()) {
    (item.key().find("bias") != std::string::npos ? biases : weights).push_back(item.value());
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(weights);
  groups.emplace_back(biases, std::make_unique<OptimizerOptions>("sgd:lr=0"));
  Optimizer opt(groups, "sgd:lr=0.1");
  EXPECT_EQ(opt.inner().num_groups(), 2u);
  const auto before = snapshot(a);
  loss_of(a, 1).backward();
  opt.step();
  const auto after = snapshot(a);
  EXPECT_FALSE(after[0].equal(before[0]));  // 0.weight
  EXPECT_TRUE(after[1].equal(before[1]));   // 0.bias
  EXPECT_THROW(Optimizer(b->parameters(), "nosuch:lr=1"), InvalidArgument);
}

TEST(TorchOptimizer, SaveLoadRoundTrip) {
  torch::nn::Sequential a = seeded_mlp();
  Optimizer opt(a->parameters(), "adam:lr=0.01");
  for (int k = 1; k <= 3; ++k) {
    opt.zero_grad();
    loss_of(a, k).backward();
    opt.step();
  }
  std::stringstream buffer;
  torch::save(opt, buffer);

  torch::nn::Sequential b = seeded_mlp();
  {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < b->parameters().size(); ++i) {
      b->parameters()[i].copy_(a->parameters()[i]);
    }
  }
  Optimizer restored(b->parameters(), "adam:lr=0.01");
  torch::load(restored, buffer);
  EXPECT_TRUE(restored.state_dict() == opt.state_dict());
  EXPECT_EQ(restored.inner().step_count(), 3);
  // One more identical step on both: identical parameters.
  opt.zero_grad();
  loss_of(a, 4).backward();
  opt.step();
  restored.zero_grad();
  loss_of(b, 4).backward();
  restored.step();
  const auto pa = snapshot(a), pb = snapshot(b);
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(pa[i].equal(pb[i])) << i;

  std::stringstream again;
  torch::save(opt, again);
  Optimizer sgd(b->parameters(), "sgd:lr=0.1");
  EXPECT_THROW(torch::load(sgd, again), InvalidArgument);
}

}  // namespace
}  // namespace terse::torch_adapter

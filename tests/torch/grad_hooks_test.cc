#include "terse/torch/grad_hooks.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/nn/functional/loss.h>
#include <torch/utils.h>

#include <mutex>

#include "terse/comm/local_communicator.h"
#include "terse/torch/model_zoo.h"
#include "terse/torch/view_of.h"

namespace terse::torch_adapter {
namespace {

std::vector<Param> params_of(torch::nn::Sequential& m) {
  std::vector<Param> out;
  for (const auto& item : m->named_parameters()) {
    const at::Tensor& p = item.value();
    out.push_back(Param{
        view_of(p), {}, std::vector<int64_t>(p.sizes().begin(), p.sizes().end()), item.key()});
  }
  return out;
}

at::Tensor loss_of(torch::nn::Sequential& m, int rank) {
  at::Tensor x = at::arange(8 * 784, at::kFloat).reshape({8, 1, 28, 28}).mul(1e-4 * (rank + 1));
  at::Tensor y = at::arange(8, at::kLong).remainder(10);
  return torch::nn::functional::cross_entropy(m->forward(x), y);
}

// Two ranks, different data: the engine's gradients equal the mean of torch's own gradients.
TEST(GradHooks, BucketsHoldTheAveragedTorchGradients) {
  std::vector<std::vector<at::Tensor>> torch_grads(2), engine_grads(2);
  std::mutex mu;
  run_local_ranks(2, [&](Communicator& comm) {
    torch::manual_seed(3);
    torch::nn::Sequential m = make_model("mlp");
    DataParallel dp(comm, params_of(m), 0.1);  // several buckets
    GradHooks hooks(m->parameters(), dp);
    for (int step = 0; step < 2; ++step) {  // the second step re-arms everything
      hooks.clear_torch_grads();
      loss_of(m, comm.rank()).backward();
      EXPECT_EQ(dp.num_ready(), m->parameters().size());
      dp.finish();
    }
    std::lock_guard<std::mutex> lock(mu);
    for (size_t i = 0; i < dp.params().size(); ++i) {
      torch_grads[static_cast<size_t>(comm.rank())].push_back(m->parameters()[i].grad().clone());
      const Param& p = dp.params()[i];
      engine_grads[static_cast<size_t>(comm.rank())].push_back(
          at::from_blob(p.grad.data, {p.grad.numel}, at::kFloat).clone());
    }
  });
  ASSERT_EQ(torch_grads[0].size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    const at::Tensor mean = (torch_grads[0][i] + torch_grads[1][i]).div(2).flatten();
    EXPECT_TRUE(engine_grads[0][i].equal(engine_grads[1][i])) << "param " << i;
    EXPECT_TRUE(at::allclose(engine_grads[0][i], mean, 1e-6, 1e-7)) << "param " << i;
    EXPECT_FALSE(torch_grads[0][i].equal(torch_grads[1][i])) << "ranks saw the same data";
  }
}

TEST(GradHooks, RejectsMismatchedTensors) {
  run_local_ranks(1, [&](Communicator& comm) {
    torch::nn::Sequential a = make_model("mlp");
    torch::nn::Sequential b = make_model("mlp");
    DataParallel dp(comm, params_of(a), 25.0);
    EXPECT_THROW(GradHooks(b->parameters(), dp), InvalidArgument);
    std::vector<at::Tensor> fewer = a->parameters();
    fewer.pop_back();
    EXPECT_THROW(GradHooks(fewer, dp), InvalidArgument);
  });
}

}  // namespace
}  // namespace terse::torch_adapter

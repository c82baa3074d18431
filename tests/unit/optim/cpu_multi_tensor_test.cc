// The CPU multi-tensor executor: sizes around chunk boundaries, threads, dtypes, validation.

#include <gtest/gtest.h>

#include <vector>

#include "terse/core/philox.h"
#include "terse/kernels/cpu_multi_tensor.h"
#include "terse/kernels/cpu_threads.h"
#include "terse/optim/optimizer.h"

namespace terse {
namespace {

// Restores the thread count a test changed.
struct ThreadGuard {
  ~ThreadGuard() { set_cpu_threads(0); }
};

struct Tensors {
  std::vector<std::vector<float>> values, grads;
  explicit Tensors(const std::vector<int64_t>& sizes) {
    PhiloxStream rng(42, 0);
    for (int64_t n : sizes) {
      values.emplace_back(static_cast<size_t>(n));
      grads.emplace_back(static_cast<size_t>(n));
      for (auto& v : values.back()) v = rng.uniform() * 2 - 1;
      for (auto& g : grads.back()) g = rng.uniform() - 0.5f;
    }
  }
  std::vector<Param> params() {
    std::vector<Param> ps;
    for (size_t i = 0; i < values.size(); ++i) {
      const auto n = static_cast<int64_t>(values[i].size());
      ps.push_back(Param{TensorView::of(values[i].data(), n),
                         TensorView::of(grads[i].data(), n),
                         {},
                         "t" + std::to_string(i)});
    }
    return ps;
  }
};

// Sizes 0, 1, 4097, a tensor over several chunks and odd sizes around chunk boundaries.
const std::vector<int64_t> kSizes = {
    0, 1, 4097, 3 * kCpuChunkElements + 17, 5, kCpuChunkElements - 1, kCpuChunkElements + 1};

TEST(CpuMultiTensor, ThreadsOneAndTwoAreBitIdentical) {
  ThreadGuard guard;
  for (const char* spec :
       {"sgd:lr=0.1,momentum=0.9,nesterov=true", "adam:lr=0.01", "adamw:lr=0.01,amsgrad=true"}) {
    Tensors one(kSizes), two(kSizes);
    auto a = make_optimizer(spec, one.params());
    auto b = make_optimizer(spec, two.params());
    for (int s = 0; s < 3; ++s) {
      set_cpu_threads(1);
      a->step();
      set_cpu_threads(2);
      b->step();
    }
    EXPECT_EQ(one.values, two.values) << spec;
    EXPECT_EQ(a->state_dict(), b->state_dict()) << spec;
  }
}

TEST(CpuMultiTensor, EveryElementMatchesTheScalarRule) {
  // Sizes 0, 1, 4097 and chunk-spanning tensors: each element equals the Rule applied alone.
  ThreadGuard guard;
  set_cpu_threads(2);
  Tensors t(kSizes);
  const Tensors original = t;
  auto opt = make_optimizer("adam:lr=0.01,weight_decay=0.1", t.params());
  opt->step();
  const auto rule = AdamRule<false>::for_step(0.01, 0.9, 0.999, 1e-8, 0.1, false, false, 1);
  for (size_t i = 0; i < t.values.size(); ++i) {
    ASSERT_EQ(t.values[i].size(), static_cast<size_t>(kSizes[i]));
    for (size_t e = 0; e < t.values[i].size(); ++e) {
      float p = original.values[i][e];
      float m = 0, v = 0, unused = 0;
      rule(p, original.grads[i][e], m, v, unused);
      ASSERT_EQ(t.values[i][e], p) << "tensor " << i << " element " << e;
    }
  }
}

TEST(CpuMultiTensor, ThreadCountApi) {
  ThreadGuard guard;
  set_cpu_threads(3);
  EXPECT_EQ(cpu_threads(), 3);
  set_cpu_threads(0);
  EXPECT_GE(cpu_threads(), 1);
  EXPECT_THROW(set_cpu_threads(-1), InvalidArgument);
}

TEST(CpuMultiTensor, RejectsBadTasksBeforeTouchingData) {
  std::vector<float> p(4, 1.0f), g(4, 1.0f), s(4, 0.0f);
  std::vector<CpuTensorTask<SgdRule<true>>> tasks(2);
  tasks[0].rule = SgdRule<true>::for_step(0.1, 0.9, 0, 0, false, false, 1);
  tasks[0].param = TensorView::of(p.data(), 4);
  tasks[0].grad = TensorView::of(g.data(), 4);
  tasks[0].states[0] = s.data();
  tasks[1] = tasks[0];
  tasks[1].states[0] = nullptr;
  EXPECT_THROW(cpu_multi_tensor_apply(tasks), InvalidArgument);
  EXPECT_EQ(p, std::vector<float>(4, 1.0f));  // task 0 was not run either
  tasks[1] = tasks[0];
  tasks[1].grad.numel = 3;
  EXPECT_THROW(cpu_multi_tensor_apply(tasks), InvalidArgument);
  tasks.resize(1);
  cpu_multi_tensor_apply(tasks);
  EXPECT_FLOAT_EQ(p[0], 0.9f);
}

}  // namespace
}  // namespace terse

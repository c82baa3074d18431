// The optimizers that step CUDA tensors (docs/optimizers.md, "On the GPU") against the same
// optimizer on CPU tensors: the same params and state after several steps, bit for bit, on f32,
// bf16 and f16; a state dict saved on one device resumes on the other. The params here have no
// shape, so adamp and sgdp never project them (cuda_projected_test.cc runs shaped ones).
// Lookahead runs here around adamw and sgd: its slow weights sync at steps 2 and 4, or at the
// resumed step 5 (k = 5, from the loaded slow weights), or at every step (k = 1). The refusal
// of parameters of two devices needs no GPU.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gpu_skip.h"
#include "parity_model.h"
#include "terse/core/dtype.h"
#include "terse/core/error.h"
#include "terse/core/philox.h"
#include "terse/kernels/cuda_info.h"
#include "terse/kernels/cuda_multi_tensor.h"
#include "terse/optim/optimizer.h"

namespace terse {
namespace {

// Flat tensors (no shape: AdamP and SGDP take their one-pass path here).
template <typename T>
using Model = parity::ParityModel<T>;

const std::vector<int64_t> kSizes = {4097, 1, 70001, 17};

template <typename T>
void compare(const std::string& spec, DType dtype) {
  SCOPED_TRACE(spec + " on " + dtype_name(dtype));
  Model<T> cpu(kSizes, Device::cpu()), gpu(kSizes, Device::cuda(0));
  auto a = make_optimizer(spec, cpu.params(dtype));
  auto b = make_optimizer(spec, gpu.params(dtype));
  for (int step = 1; step <= 4; ++step) {
    cpu.set_grads(step);
    gpu.set_grads(step);
    a->step();
    b->step();
  }
  gpu.fetch();
  for (size_t t = 0; t < kSizes.size(); ++t) {
    EXPECT_EQ(std::memcmp(cpu.p[t].data(), gpu.p[t].data(), cpu.bytes(t)), 0) << "tensor " << t;
  }
  // The state dicts agree, and each resumes the other: one more step from the CUDA state on
  // the CPU equals one more step of the CPU run.
  const StateDict sa = a->state_dict(), sb = b->state_dict();
  EXPECT_TRUE(sa == sb) << "the state dicts differ";
  Model<T> resumed(kSizes, Device::cpu());
  resumed.p = cpu.p;
  auto c = make_optimizer(spec, resumed.params(dtype));
  c->load_state_dict(sb);
  auto d = make_optimizer(spec, gpu.params(dtype));
  d->load_state_dict(sa);
  cpu.set_grads(5);
  resumed.set_grads(5);
  gpu.set_grads(5);
  a->step();
  c->step();
  d->step();
  gpu.fetch();
  for (size_t t = 0; t < kSizes.size(); ++t) {
    EXPECT_EQ(std::memcmp(cpu.p[t].data(), resumed.p[t].data(), cpu.bytes(t)), 0)
        << "CPU resumed from the CUDA state, tensor " << t;
    EXPECT_EQ(std::memcmp(cpu.p[t].data(), gpu.p[t].data(), cpu.bytes(t)), 0)
        << "CUDA resumed from the CPU state, tensor " << t;
  }
}

TEST(CudaOptimizer, StepsStateAndResumeMatchTheCpuOptimizerBitForBit) {
  TERSE_SKIP_WITHOUT_GPU();
  for (const std::string spec : {"sgd:lr=0.1",
                                 "sgd:lr=0.1,momentum=0.9,nesterov=true,weight_decay=1e-4",
                                 "adam:lr=0.01,amsgrad=true",
                                 "adamw:lr=0.01,weight_decay=0.1",
                                 "lion:lr=1e-3",
                                 "adan:lr=0.01",
                                 "adan:lr=0.01,max_grad_norm=0.5,no_prox=true",
                                 "adabelief:lr=0.01",
                                 "diffgrad:lr=0.01",
                                 "exadam:lr=0.01",
                                 "spam:lr=0.01",
                                 "sgd_sai:lr=0.01",
                                 "sgd_sai:lr=0.01,momentum=0,weight_decay=0.1",
                                 "adamp:lr=0.01,weight_decay=0.1",
                                 "adamp:lr=0.01,nesterov=true",
                                 "sgdp:lr=0.1,momentum=0.9,weight_decay=1e-4",
                                 "sgdp:lr=0.1,momentum=0.9,nesterov=true",
                                 "lookahead:inner=adamw,k=5,alpha=0.5,lr=0.01,weight_decay=0.1",
                                 "lookahead:inner=adamw,k=2,alpha=0.8,lr=0.01",
                                 "lookahead:inner=sgd,k=1,alpha=0.3,lr=0.1,momentum=0.9"}) {
    compare<float>(spec, DType::kF32);
    compare<BFloat16>(spec, DType::kBF16);
    compare<Half>(spec, DType::kF16);
  }
}

// No GPU needed: the parameters are never read.
TEST(CudaOptimizer, ParametersOfTwoDevicesAreRefused) {
  float p[4] = {}, g[4] = {};
  Param param;
  param.value = TensorView(p, 4, DType::kF32, Device::cuda(0));
  param.grad = TensorView(g, 4, DType::kF32, Device::cuda(0));
  float q[4] = {}, h[4] = {};
  Param cpu_param;
  cpu_param.value = TensorView::of(q, 4);
  cpu_param.grad = TensorView::of(h, 4);
  for (const std::string spec : {"adamw", "lookahead:inner=adamw"}) {
    SCOPED_TRACE(spec);
    try {
      make_optimizer(spec, {param, cpu_param});
      FAIL() << "mixed devices were accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("one optimizer steps the parameters of one device"),
                std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace terse

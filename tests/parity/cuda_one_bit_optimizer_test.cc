// The communicating optimizers (onebit_adam, zero_one_adam, onebit_lamb) with CUDA parameters
// against the same optimizer on the CPU, byte for byte: parameters after every step, across
// their phase changes (the all-reduce on the GPU), and the state; a checkpoint saved on one
// device continues on the other. Ranks are threads over local communicators sharing GPU 0 (the
// all-reduce's sign bytes staged through the host); each rank's gradients differ, so the 1-bit
// all-reduce mixes them.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "gpu_skip.h"
#include "parity_model.h"
#include "terse/comm/local_communicator.h"
#include "terse/core/error.h"
#include "terse/train/communicating_optimizer.h"

namespace terse {
namespace {

using parity::ParityModel;
using Model = ParityModel<float>;

// Several tensors, one of more than a norm block, one of one element.
const std::vector<int64_t> kSizes = {300, 4097, 65536 + 3, 1, 12};

// Two groups (the second with its own lr and weight decay).
std::vector<ParamGroup> groups_of(Model& m) {
  std::vector<Param> all = m.params(DType::kF32);
  ParamGroup a, b;
  a.params.assign(all.begin(), all.begin() + 3);
  b.params.assign(all.begin() + 3, all.end());
  b.overrides = {{"lr", "0.003"}, {"weight_decay", "0.05"}};
  return {a, b};
}

// This rank's gradients of `step`; tensor 2 has none during the first steps (the momentum mask).
void set_grads(Model& m, int rank, int step) {
  m.set_grads(16 * step + rank, [&](size_t t, int) { return t == 2 && step < 2; });
}

bool same_bytes(const Model& a, const Model& b) {
  for (size_t t = 0; t < a.p.size(); ++t) {
    if (std::memcmp(a.p[t].data(), b.p[t].data(), a.bytes(t)) != 0) return false;
  }
  return true;
}

std::unique_ptr<CommunicatingOptimizer> make(Communicator& c, const std::string& spec, Model& m) {
  return make_communicating_optimizer(c, OptimizerSpec::parse(spec), groups_of(m));
}

// `steps` steps on the CPU and on the GPU, compared after each; then the CPU's state continues on
// a fresh GPU optimizer and the GPU's on a fresh CPU one for `more` steps, all four compared.
void expect_parity(int world, const std::string& spec, int steps, int more) {
  run_local_ranks(world, [&](Communicator& c) {
    const int r = c.rank();
    Model cpu_m(kSizes, Device::cpu()), gpu_m(kSizes, Device::cuda(0));
    auto cpu = make(c, spec, cpu_m);
    auto gpu = make(c, spec, gpu_m);
    for (int s = 0; s < steps; ++s) {
      set_grads(cpu_m, r, s);
      set_grads(gpu_m, r, s);
      cpu->step();
      gpu->step();
      gpu_m.fetch();
      ASSERT_TRUE(same_bytes(gpu_m, cpu_m)) << spec << ": step " << s + 1 << ", rank " << r;
      EXPECT_EQ(gpu->last_step_comm().payload_bytes, cpu->last_step_comm().payload_bytes);
    }
    EXPECT_TRUE(gpu->state_dict() == cpu->state_dict()) << spec;
    EXPECT_EQ(gpu->state_bytes(), cpu->state_bytes());

    // Checkpoints across devices: CPU -> GPU and GPU -> CPU, each over a copy of the params.
    Model to_gpu_m(kSizes, Device::cuda(0)), to_cpu_m(kSizes, Device::cpu());
    to_gpu_m.p = cpu_m.p;
    to_gpu_m.upload();
    to_cpu_m.p = cpu_m.p;
    auto to_gpu = make(c, spec, to_gpu_m);
    auto to_cpu = make(c, spec, to_cpu_m);
    to_gpu->load_state_dict(cpu->state_dict());
    to_cpu->load_state_dict(gpu->state_dict());
    for (int s = steps; s < steps + more; ++s) {
      for (Model* m : {&cpu_m, &gpu_m, &to_gpu_m, &to_cpu_m}) set_grads(*m, r, s);
      cpu->step();
      gpu->step();
      to_gpu->step();
      to_cpu->step();
      gpu_m.fetch();
      to_gpu_m.fetch();
      ASSERT_TRUE(same_bytes(gpu_m, cpu_m)) << spec << ": step " << s + 1;
      ASSERT_TRUE(same_bytes(to_gpu_m, cpu_m))
          << spec << ": CPU checkpoint on the GPU, step " << s + 1;
      ASSERT_TRUE(same_bytes(to_cpu_m, cpu_m))
          << spec << ": GPU checkpoint on the CPU, step " << s + 1;
    }
    EXPECT_TRUE(to_gpu->state_dict() == cpu->state_dict()) << spec;
  });
}

TEST(CudaOneBitOptimizer, OneBitAdamMatchesTheCpuAcrossTheFreeze) {
  TERSE_SKIP_WITHOUT_GPU();
  for (int world : {1, 2}) {
    expect_parity(world, "onebit_adam:freeze_step=3,lr=0.01", 7, 3);
    expect_parity(world,
                  "onebit_adam:freeze_step=2,lr=0.01,bias_correction=true,weight_decay=0.01,"
                  "defer_worker_error=false",
                  6, 2);
  }
}

// 0/1 Adam: variance steps (var_interval 1, then 2 after var_update_scaler=2 of them) and 1-bit
// steps, the freeze after step 5 (p_sync copied, errors reset), then local steps and syncs as
// local_step_interval grows 1, 2, 4; the checkpoint falls in the local phase.
TEST(CudaOneBitOptimizer, ZeroOneAdamMatchesTheCpuAcrossItsPhases) {
  TERSE_SKIP_WITHOUT_GPU();
  for (int world : {1, 2}) {
    expect_parity(world,
                  "zero_one_adam:var_freeze_step=5,var_update_scaler=2,local_step_scaler=2,"
                  "local_step_clipper=4,lr=0.01",
                  13, 5);
    expect_parity(world,
                  "zero_one_adam:var_freeze_step=3,var_update_scaler=1,local_step_scaler=1,"
                  "local_step_clipper=2,lr=0.01,weight_decay=0.01,defer_worker_error=false",
                  6, 4);
  }
}

// 1-bit LAMB: the LAMB warm-up (per-tensor norms on the GPU in the CPU's order), then the
// compression phase (the scaling coefficients at its first step, the fresh variance, the max
// ratio, the weight-decay factor in group b only); the checkpoint falls in the compression phase.
TEST(CudaOneBitOptimizer, OneBitLambMatchesTheCpuAcrossTheFreeze) {
  TERSE_SKIP_WITHOUT_GPU();
  for (int world : {1, 2}) {
    expect_parity(world, "onebit_lamb:freeze_step=3,lr=0.01", 7, 3);
    expect_parity(world,
                  "onebit_lamb:freeze_step=2,lr=0.02,max_coeff=0.3,factor_threshold=0.5,"
                  "defer_worker_error=false",
                  2, 5);
  }
}

// A non-finite gradient in the warm-up and in the compression (0/1 Adam: local, at a sync)
// phase: NumericalError naming the element, parameters unchanged, as on the CPU.
TEST(CudaOneBitOptimizer, NonFiniteGradientIsRefusedAsOnTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  for (const char* spec : {"onebit_adam:freeze_step=2", "zero_one_adam:var_freeze_step=2",
                           "onebit_lamb:freeze_step=2"}) {
    run_local_ranks(1, [&](Communicator& c) {
      for (int at : {0, 3}) {
        Model m(kSizes, Device::cuda(0));
        auto opt = make(c, spec, m);
        for (int s = 0; s < at; ++s) {
          set_grads(m, 0, s);
          opt->step();
        }
        set_grads(m, 0, at);
        m.g[1][17] = std::numeric_limits<float>::quiet_NaN();
        cuda_copy(m.dg[1], m.g[1].data(), m.bytes(1));
        m.fetch();
        const std::vector<std::vector<float>> before = m.p;
        const StateDict state = opt->state_dict();
        try {
          opt->step();
          ADD_FAILURE() << spec << ": no throw at step " << at + 1;
        } catch (const NumericalError& e) {
          if (at == 0) {
            EXPECT_NE(std::string(e.what()).find("at element 17"), std::string::npos)
                << spec << ": " << e.what();
          }
        }
        m.fetch();
        EXPECT_EQ(m.p, before) << spec << " at step " << at + 1;
        EXPECT_EQ(opt->step_count(), at) << spec;
        EXPECT_TRUE(opt->state_dict() == state) << spec << " at step " << at + 1;
      }
    });
  }
}

}  // namespace
}  // namespace terse

// cuda_projected_apply (AdamP / SGDP on the GPU) against cpu_projected_apply: the same views, the
// same per-row and layer sums and the same params and states, byte for byte, over several steps,
// for every Rule (Nesterov or not), f32/bf16/f16 and a mix of them in one call, aligned and
// misaligned buffers, with tensors that take the channel view, the layer view or neither, rows
// shorter and longer than a chunk, one row, and up to 70001 rows (more than 256 groups of 256
// rows: the layer's sum takes three rounds on the GPU) (tests/unit/optim/projected_cases.h).
// Steps that ask for no report (the optimizers' way) must give the same params. Then the adamp
// and sgdp optimizers on shaped CUDA params against themselves on the CPU, resuming across
// devices.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gpu_skip.h"
#include "projected_cases.h"
#include "terse/core/error.h"
#include "terse/kernels/adamp_rule.h"
#include "terse/kernels/cpu_projected.h"
#include "terse/kernels/cuda_multi_tensor.h"
#include "terse/kernels/cuda_projected.h"
#include "terse/kernels/sgdp_rule.h"
#include "terse/optim/optimizer.h"

namespace terse {
namespace {

using test::HostTensor;
using test::ProjCase;

// A HostTensor's buffers on GPU 0, `offset` elements past the start of their allocations (1
// makes them misaligned for 4-element vector access).
class DeviceTensor {
 public:
  DeviceTensor(const HostTensor& h, int offset) : n_(h.n), esize_(dtype_size(h.dtype)) {
    const size_t count = static_cast<size_t>(h.n + offset);
    for (void** b : {&p_, &g_}) *b = cuda_alloc_zeroed(0, count * esize_);
    for (void** b : {&s0_, &s1_}) *b = cuda_alloc_zeroed(0, count * sizeof(float));
    at_ = static_cast<size_t>(offset);
    cuda_copy(p(), h.p.data(), h.p.size());
    cuda_copy(s(s0_), h.s0.data(), h.s0.size() * sizeof(float));
    cuda_copy(s(s1_), h.s1.data(), h.s1.size() * sizeof(float));
    upload_grad(h);
  }
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;
  ~DeviceTensor() {
    for (void* b : {p_, g_, s0_, s1_}) cuda_free(b);
  }

  void upload_grad(const HostTensor& h) { cuda_copy(g(), h.g.data(), h.g.size()); }
  // The params and states, as host buffers shaped like h's.
  void download(HostTensor& h) const {
    cuda_copy(h.p.data(), p(), h.p.size());
    cuda_copy(h.s0.data(), s(s0_), h.s0.size() * sizeof(float));
    cuda_copy(h.s1.data(), s(s1_), h.s1.size() * sizeof(float));
  }
  void* p() const { return static_cast<unsigned char*>(p_) + at_ * esize_; }
  void* g() const { return static_cast<unsigned char*>(g_) + at_ * esize_; }
  float* s(void* base) const { return static_cast<float*>(base) + at_; }

  template <typename Rule>
  ProjectedTask<Rule> task(const Rule& rule, const HostTensor& h) const {
    ProjectedTask<Rule> t;
    t.rule = rule;
    t.param = TensorView(p(), n_, h.dtype, Device::cuda(0));
    t.grad = TensorView(g(), n_, h.dtype, Device::cuda(0));
    t.states[0] = s(s0_);
    if constexpr (Rule::kNumStates > 1) t.states[1] = s(s1_);
    t.rows = h.rows;
    return t;
  }
  Param param(const HostTensor& h, const std::string& name) const {
    return Param{TensorView(p(), n_, h.dtype, Device::cuda(0)),
                 TensorView(g(), n_, h.dtype, Device::cuda(0)), h.shape, name};
  }

 private:
  int64_t n_;
  size_t esize_;
  size_t at_ = 0;
  void *p_ = nullptr, *g_ = nullptr, *s0_ = nullptr, *s1_ = nullptr;
};

Param host_param(HostTensor& h, const std::string& name) {
  return Param{TensorView(h.p.data(), h.n, h.dtype), TensorView(h.g.data(), h.n, h.dtype), h.shape,
               name};
}

bool same_bytes(const std::vector<unsigned char>& a, const std::vector<unsigned char>& b) {
  return a == b;
}
bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// The plain sum of the rows in order from +0: the layer's sum up to 256 rows, not past them.
RowSums sequential_sum(const std::vector<RowSums>& rows) {
  RowSums s;
  for (const RowSums& r : rows) s += r;
  return s;
}

// Steps every case (tensor i stored as dtypes[i % size]) on the CPU and on the GPU and compares
// everything after each step (step 2 asks the GPU for no report, so only params and states).
template <typename Rule, typename MakeRule>
void compare(const MakeRule& make_rule, const std::vector<DType>& dtypes, int offset) {
  const std::vector<ProjCase> cases = test::proj_cases();
  std::vector<HostTensor> cpu;
  std::vector<std::unique_ptr<DeviceTensor>> gpu;
  for (size_t i = 0; i < cases.size(); ++i) {
    cpu.emplace_back(cases[i], dtypes[i % dtypes.size()], 100 + i);
    gpu.push_back(std::make_unique<DeviceTensor>(cpu.back(), offset));
  }
  bool layer_order_shows = false;  // some tensor's layer sum depends on the order of its rows
  for (int64_t step = 1; step <= 3; ++step) {
    const Rule rule = make_rule(step);
    std::vector<ProjectedTask<Rule>> ct, gt;
    for (size_t i = 0; i < cpu.size(); ++i) {
      cpu[i].next_grad();
      gpu[i]->upload_grad(cpu[i]);
      ct.push_back(cpu[i].task(rule));
      gt.push_back(gpu[i]->task(rule, cpu[i]));
    }
    std::vector<std::vector<RowSums>> cpu_sums, gpu_sums;
    std::vector<ProjectionView> gpu_views;
    std::vector<RowSums> gpu_layer;
    const bool report = step != 2;
    const auto cpu_views = cpu_projected_apply(ct, &cpu_sums);
    if (report) {
      cuda_projected_apply(gt, &gpu_views, &gpu_sums, &gpu_layer);
      ASSERT_EQ(gpu_views.size(), cpu.size());
      ASSERT_EQ(gpu_sums.size(), cpu.size());
      ASSERT_EQ(gpu_layer.size(), cpu.size());
    } else {
      cuda_projected_apply(gt);
    }
    cuda_synchronize();
    for (size_t i = 0; i < cpu.size(); ++i) {
      SCOPED_TRACE(test::shape_str(cpu[i].shape) + " (tensor " + std::to_string(i) + ", " +
                   dtype_name(cpu[i].dtype) + ") step " + std::to_string(step) + " offset " +
                   std::to_string(offset));
      if (cases[i].expect) {
        EXPECT_EQ(static_cast<int>(cpu_views[i]), static_cast<int>(*cases[i].expect))
            << "the case no longer takes the view it is meant to test";
      }
      if (report) {
        EXPECT_EQ(static_cast<int>(gpu_views[i]), static_cast<int>(cpu_views[i])) << "view";
        EXPECT_TRUE(test::same_bits(gpu_sums[i], cpu_sums[i])) << "row sums";
        if (!cpu_sums[i].empty()) {
          const RowSums want = projection_layer_sum(cpu_sums[i]);
          EXPECT_TRUE(test::same_bits({gpu_layer[i]}, {want})) << "layer sums";
          layer_order_shows =
              layer_order_shows || !test::same_bits({want}, {sequential_sum(cpu_sums[i])});
        }
      }
      HostTensor back = cpu[i];
      gpu[i]->download(back);
      EXPECT_TRUE(same_bytes(back.p, cpu[i].p)) << "params";
      EXPECT_TRUE(same_bytes(back.s0, cpu[i].s0)) << "state 0";
      EXPECT_TRUE(same_bytes(back.s1, cpu[i].s1)) << "state 1";
    }
  }
  EXPECT_TRUE(layer_order_shows) << "no tensor's layer sum depends on the order of its rows";
}

template <typename Rule, typename MakeRule>
void compare_all(const MakeRule& make_rule) {
  for (const int offset : {0, 1}) {
    for (const std::vector<DType>& dts :
         std::vector<std::vector<DType>>{{DType::kF32},
                                         {DType::kBF16},
                                         {DType::kF16},
                                         {DType::kF32, DType::kBF16, DType::kF16}}) {
      compare<Rule>(make_rule, dts, offset);
    }
  }
}

TEST(CudaProjected, AdamPMatchesTheCpuExecutorBitForBit) {
  TERSE_SKIP_WITHOUT_GPU();
  compare_all<AdamPRule<false>>([](int64_t t) {
    return AdamPRule<false>::for_step(0.01, 0.9, 0.999, 1e-8, 0.1, 0.1, 0.1, t);
  });
  compare_all<AdamPRule<true>>([](int64_t t) {
    return AdamPRule<true>::for_step(0.01, 0.9, 0.999, 1e-8, 0.1, 0.1, 0.1, t);
  });
}

TEST(CudaProjected, SgdPMatchesTheCpuExecutorBitForBit) {
  TERSE_SKIP_WITHOUT_GPU();
  compare_all<SgdPRule<false>>(
      [](int64_t t) { return SgdPRule<false>::for_step(0.1, 0.9, 0.1, 1e-4, 0.1, 0.1, 1e-8, t); });
  compare_all<SgdPRule<true>>(
      [](int64_t t) { return SgdPRule<true>::for_step(0.1, 0.9, 0, 1e-4, 0.1, 0.1, 1e-8, t); });
}

// The optimizers on shaped params: CPU and GPU runs agree after every step, their state dicts
// agree, and each resumes from the other's.
void compare_optimizer(const std::string& spec, DType dtype) {
  SCOPED_TRACE(spec + " on " + dtype_name(dtype));
  const std::vector<ProjCase> cases = test::proj_cases();
  std::vector<HostTensor> cpu;
  std::vector<std::unique_ptr<DeviceTensor>> gpu;
  std::vector<Param> cpu_params, gpu_params;
  for (size_t i = 0; i < cases.size(); ++i) cpu.emplace_back(cases[i], dtype, 200 + i);
  for (size_t i = 0; i < cases.size(); ++i) {
    gpu.push_back(std::make_unique<DeviceTensor>(cpu[i], 0));
    cpu_params.push_back(host_param(cpu[i], "t" + std::to_string(i)));
    gpu_params.push_back(gpu[i]->param(cpu[i], "t" + std::to_string(i)));
  }
  auto a = make_optimizer(spec, cpu_params);
  auto b = make_optimizer(spec, gpu_params);
  for (int step = 1; step <= 4; ++step) {
    for (size_t i = 0; i < cpu.size(); ++i) {
      cpu[i].next_grad();
      gpu[i]->upload_grad(cpu[i]);
    }
    a->step();
    b->step();
    cuda_synchronize();
    for (size_t i = 0; i < cpu.size(); ++i) {
      HostTensor back = cpu[i];
      gpu[i]->download(back);
      EXPECT_TRUE(same_bytes(back.p, cpu[i].p))
          << "params of " << test::shape_str(cpu[i].shape) << " after step " << step;
    }
  }
  const StateDict sa = a->state_dict(), sb = b->state_dict();
  EXPECT_TRUE(sa == sb) << "the state dicts differ";
  // c: a CPU copy resumed from the GPU's state; d: the GPU params resumed from the CPU's.
  std::vector<HostTensor> copy = cpu;
  std::vector<Param> copy_params;
  for (size_t i = 0; i < copy.size(); ++i) {
    copy_params.push_back(host_param(copy[i], "t" + std::to_string(i)));
  }
  auto c = make_optimizer(spec, copy_params);
  c->load_state_dict(sb);
  auto d = make_optimizer(spec, gpu_params);
  d->load_state_dict(sa);
  // a steps cpu, c steps copy and d the GPU params: all three must agree after step 5.
  for (size_t i = 0; i < cpu.size(); ++i) {
    cpu[i].next_grad();
    std::copy(cpu[i].g.begin(), cpu[i].g.end(), copy[i].g.begin());  // c holds copy's buffers
    gpu[i]->upload_grad(cpu[i]);
  }
  a->step();
  c->step();
  d->step();
  cuda_synchronize();
  for (size_t i = 0; i < cpu.size(); ++i) {
    EXPECT_TRUE(same_bytes(copy[i].p, cpu[i].p))
        << "CPU resumed from the GPU state, " << test::shape_str(cpu[i].shape);
    HostTensor back = cpu[i];
    gpu[i]->download(back);
    EXPECT_TRUE(same_bytes(back.p, cpu[i].p))
        << "GPU resumed from the CPU state, " << test::shape_str(cpu[i].shape);
  }
}

TEST(CudaProjected, AdamPAndSgdPOnShapedParamsMatchTheCpuAndResumeAcrossDevices) {
  TERSE_SKIP_WITHOUT_GPU();
  for (const std::string spec :
       {"adamp:lr=0.01,weight_decay=0.1", "adamp:lr=0.01,nesterov=true,weight_decay=0.1",
        "sgdp:lr=0.1", "sgdp:lr=0.1,momentum=0.9,dampening=0.1,weight_decay=1e-4",
        "sgdp:lr=0.1,momentum=0.9,nesterov=true,weight_decay=1e-4"}) {
    for (const DType dt : {DType::kF32, DType::kBF16, DType::kF16}) compare_optimizer(spec, dt);
  }
}

// No GPU needed: checked before any CUDA call.
TEST(CudaProjected, RefusesHostTensorsAndMixedDevices) {
  std::vector<float> p(4), g(4), m(4), v(4);
  ProjectedTask<AdamPRule<false>> t;
  t.rule = AdamPRule<false>::for_step(0.01, 0.9, 0.999, 1e-8, 0, 0.1, 0.1, 1);
  t.param = TensorView::of(p.data(), 4);
  t.grad = TensorView::of(g.data(), 4);
  t.states[0] = m.data();
  t.states[1] = v.data();
  t.rows = 2;
  try {
    cuda_projected_apply(std::vector<ProjectedTask<AdamPRule<false>>>{t});
    FAIL() << "host tensors were accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("not on one CUDA device"), std::string::npos) << e.what();
  }
  ProjectedTask<AdamPRule<false>> a = t, b = t;
  a.param.device = a.grad.device = Device::cuda(0);
  b.param.device = b.grad.device = Device::cuda(1);
  EXPECT_THROW(cuda_projected_apply(std::vector<ProjectedTask<AdamPRule<false>>>{a, b}),
               InvalidArgument);
  a.rows = 3;  // 4 elements in 3 rows
  EXPECT_THROW(cuda_projected_apply(std::vector<ProjectedTask<AdamPRule<false>>>{a}),
               InvalidArgument);
}

}  // namespace
}  // namespace terse

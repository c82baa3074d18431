// The param-state passes (terse/kernels/param_state_apply.h: Lookahead's slow weights, the
// parameter EMA) and the parameter EMA (terse/optim/param_ema.h) on the GPU against the host,
// bit for bit, on f32, bf16 and f16: every Rule over tensors of odd sizes, aligned and not (the
// kernel's scalar path), with infinities, NaN and subnormals; the EMA over several updates with
// and without warm-up, its evaluation weights, and its state dict across devices. Lookahead's
// steps are in cuda_optimizer_test.cc. The refusals need no GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "gpu_skip.h"
#include "parity_model.h"
#include "terse/core/dtype.h"
#include "terse/core/error.h"
#include "terse/core/philox.h"
#include "terse/kernels/cuda_multi_tensor.h"
#include "terse/kernels/param_state_apply.h"
#include "terse/optim/param_ema.h"

namespace terse {
namespace {

// 65536 and 65537: one whole chunk of the GPU pass, and one element into the next.
const std::vector<int64_t> kPassSizes = {1, 4097, 70001, 17, 3, 65536, 65537, 6};

// The same bits, or both NaN (the host's and the GPU's NaN payloads differ: x86 makes
// 0xffc00000 where a GPU makes 0x7fffffff).
template <typename T>
bool same(const T& a, const T& b) {
  if (std::memcmp(&a, &b, sizeof(T)) == 0) return true;
  return std::isnan(load_as_float(&a, 0)) && std::isnan(load_as_float(&b, 0));
}

// Values in [-2, 2) with, every 97th element from `salt`, one of the special values.
float value_at(PhiloxStream& rng, int64_t j, int salt) {
  static const float kSpecial[] = {std::numeric_limits<float>::infinity(),
                                   -std::numeric_limits<float>::infinity(),
                                   std::numeric_limits<float>::quiet_NaN(),
                                   0.0f,
                                   -0.0f,
                                   1e-40f,  // subnormal in f32
                                   65519.0f,
                                   70000.0f};  // rounds to f16 infinity
  const float u = rng.uniform() * 4 - 2;
  if ((j + salt) % 97 != 0) return u;
  return kSpecial[static_cast<size_t>((j + salt) / 97) % (sizeof(kSpecial) / sizeof(float))];
}

// One tensor of the pass test: param and state on the host and on the GPU, each one element
// longer than the view, which starts at element 0 or at element 1 (not 4-aligned: the kernel's
// scalar path). The spare element, before or after the view, must come back untouched.
template <typename T>
struct PassTensor {
  int64_t n;
  int64_t p_at, s_at;  // where the views start
  std::vector<T> hp;
  std::vector<float> hs;
  void* dp = nullptr;
  float* ds = nullptr;

  PassTensor(int64_t numel, int64_t p_offset, int64_t s_offset)
      : n(numel), p_at(p_offset), s_at(s_offset), hp(numel + 1), hs(numel + 1) {
    dp = cuda_alloc_zeroed(0, hp.size() * sizeof(T));
    ds = static_cast<float*>(cuda_alloc_zeroed(0, hs.size() * sizeof(float)));
  }
  PassTensor(const PassTensor&) = delete;
  PassTensor& operator=(const PassTensor&) = delete;
  ~PassTensor() {
    cuda_free(dp);
    cuda_free(ds);
  }
  void fill(uint64_t seed, int salt) {
    PhiloxStream rng(seed, 0);
    for (int64_t j = 0; j <= n; ++j) store_from_float(hp.data(), j, value_at(rng, j, salt));
    for (int64_t j = 0; j <= n; ++j) hs[static_cast<size_t>(j)] = value_at(rng, j, salt + 40);
    cuda_copy(dp, hp.data(), hp.size() * sizeof(T));
    cuda_copy(ds, hs.data(), hs.size() * sizeof(float));
  }
  ParamStateTask host_task(DType dtype) {
    return {TensorView(hp.data() + p_at, n, dtype), hs.data() + s_at};
  }
  ParamStateTask device_task(DType dtype) {
    return {TensorView(static_cast<T*>(dp) + p_at, n, dtype, Device::cuda(0)), ds + s_at};
  }
};

template <typename T, typename Rule>
void compare_pass(const Rule& rule, const char* what, DType dtype, uint64_t seed) {
  SCOPED_TRACE(std::string(what) + " on " + dtype_name(dtype));
  std::vector<std::unique_ptr<PassTensor<T>>> tensors;
  std::vector<ParamStateTask> host, device;
  for (size_t t = 0; t < kPassSizes.size(); ++t) {
    // Param and state start at element 0 or 1, each combination in turn.
    tensors.push_back(std::make_unique<PassTensor<T>>(kPassSizes[t], t % 2, (t / 2) % 2));
    tensors.back()->fill(seed + t, static_cast<int>(t));
    host.push_back(tensors.back()->host_task(dtype));
    device.push_back(tensors.back()->device_task(dtype));
  }
  cpu_param_state_apply(rule, host);
  cuda_param_state_apply(rule, device);
  for (size_t t = 0; t < tensors.size(); ++t) {
    PassTensor<T>& x = *tensors[t];
    std::vector<T> gp(x.hp.size());
    std::vector<float> gs(x.hs.size());
    cuda_copy(gp.data(), x.dp, gp.size() * sizeof(T));
    cuda_copy(gs.data(), x.ds, gs.size() * sizeof(float));
    int64_t bad_p = 0, bad_s = 0, first = -1;
    for (size_t j = 0; j < gp.size(); ++j) {
      const bool ok_p = same(x.hp[j], gp[j]), ok_s = same(x.hs[j], gs[j]);
      bad_p += ok_p ? 0 : 1;
      bad_s += ok_s ? 0 : 1;
      if (first < 0 && !(ok_p && ok_s)) first = static_cast<int64_t>(j);
    }
    EXPECT_EQ(bad_p, 0) << "tensor " << t << " (" << x.n << " elements): params differ from "
                        << "element " << first << " of the buffer";
    EXPECT_EQ(bad_s, 0) << "tensor " << t << " (" << x.n << " elements): states differ from "
                        << "element " << first << " of the buffer";
  }
}

template <typename T>
void compare_passes(DType dtype) {
  compare_pass<T>(EmaRule::copy_param(), "copy", dtype, 100);
  compare_pass<T>(EmaRule::make(0.9), "ema decay 0.9 (w < 0.5)", dtype, 200);
  compare_pass<T>(EmaRule::make(0.25), "ema decay 0.25 (w >= 0.5)", dtype, 300);
  compare_pass<T>(LookaheadSyncRule::make(0.5), "lookahead alpha 0.5", dtype, 400);
  compare_pass<T>(LookaheadSyncRule::make(0.8), "lookahead alpha 0.8", dtype, 500);
  compare_pass<T>(LookaheadSyncRule::make(1.0), "lookahead alpha 1", dtype, 600);
  compare_pass<T>(StoreStateRule{}, "store", dtype, 700);
}

TEST(CudaParamState, EveryRuleMatchesTheHostPassBitForBit) {
  TERSE_SKIP_WITHOUT_GPU();
  compare_passes<float>(DType::kF32);
  compare_passes<BFloat16>(DType::kBF16);
  compare_passes<Half>(DType::kF16);
}

template <typename T>
using Model = parity::ParityModel<T>;

const std::vector<int64_t> kSizes = {4097, 1, 70001, 17};

// New parameter values, the same on both models (as an optimizer's step would leave them).
template <typename T>
void set_params(Model<T>& cpu, Model<T>& gpu, int update) {
  for (size_t t = 0; t < cpu.p.size(); ++t) {
    PhiloxStream rng(500 + static_cast<uint64_t>(update), t);
    for (T& x : cpu.p[t]) store_from_float(&x, 0, rng.uniform() * 2 - 1);
  }
  gpu.p = cpu.p;
  gpu.upload();
}

template <typename T>
void expect_same_averages(const ParamEma& a, const ParamEma& b, const char* what) {
  for (size_t t = 0; t < kSizes.size(); ++t) {
    const std::vector<float> x = a.average(t), y = b.average(t);
    ASSERT_EQ(x.size(), static_cast<size_t>(kSizes[t])) << what << ", tensor " << t;
    ASSERT_EQ(y.size(), x.size()) << what << ", tensor " << t;
    EXPECT_EQ(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)), 0)
        << what << ", tensor " << t;
  }
}

template <typename T>
void expect_same_params(Model<T>& a, Model<T>& b, const char* what) {
  a.fetch();
  b.fetch();
  for (size_t t = 0; t < kSizes.size(); ++t) {
    EXPECT_EQ(std::memcmp(a.p[t].data(), b.p[t].data(), a.bytes(t)), 0) << what << ", tensor " << t;
  }
}

template <typename T>
void compare_ema(const std::string& spec, DType dtype) {
  SCOPED_TRACE(spec + " on " + dtype_name(dtype));
  Model<T> cpu(kSizes, Device::cpu()), gpu(kSizes, Device::cuda(0));
  ParamEma a = ParamEma::from_spec(spec, cpu.params(dtype));
  ParamEma b = ParamEma::from_spec(spec, gpu.params(dtype));
  EXPECT_EQ(b.device(), Device::cuda(0));
  for (int u = 1; u <= 5; ++u) {
    set_params(cpu, gpu, u);
    a.update();
    b.update();
  }
  expect_same_averages<T>(a, b, "after 5 updates");
  EXPECT_EQ(a.state_bytes(), b.state_bytes());
  // The state dicts agree, and each resumes the other.
  const StateDict sa = a.state_dict(), sb = b.state_dict();
  EXPECT_TRUE(sa == sb) << "the state dicts differ";
  Model<T> resumed(kSizes, Device::cpu());
  ParamEma c = ParamEma::from_spec(spec, resumed.params(dtype));
  c.load_state_dict(sb);
  ParamEma d = ParamEma::from_spec(spec, gpu.params(dtype));
  d.load_state_dict(sa);
  EXPECT_EQ(d.num_updates(), 5);
  set_params(cpu, gpu, 6);
  for (size_t t = 0; t < kSizes.size(); ++t) {  // into the storage c's views point to
    std::copy(cpu.p[t].begin(), cpu.p[t].end(), resumed.p[t].begin());
  }
  a.update();
  c.update();
  d.update();
  expect_same_averages<T>(a, c, "the host resumed from the GPU's state");
  expect_same_averages<T>(a, d, "the GPU resumed from the host's state");
  // The EMA's weights in the parameters, rounded as the host rounds them, then the parameters
  // back as they were.
  const std::vector<std::vector<T>> before = cpu.p;
  a.load_into_params();
  d.load_into_params();
  EXPECT_EQ(a.state_bytes(), d.state_bytes());
  expect_same_params(cpu, gpu, "the EMA weights loaded");
  EXPECT_NE(std::memcmp(cpu.p[0].data(), before[0].data(), cpu.bytes(0)), 0)
      << "loading the EMA changed nothing: the test would not see a wrong load";
  a.restore_params();
  d.restore_params();
  gpu.fetch();
  for (size_t t = 0; t < kSizes.size(); ++t) {
    EXPECT_EQ(std::memcmp(cpu.p[t].data(), before[t].data(), cpu.bytes(t)), 0)
        << "host restore, tensor " << t;
    EXPECT_EQ(std::memcmp(gpu.p[t].data(), before[t].data(), cpu.bytes(t)), 0)
        << "GPU restore, tensor " << t;
  }
  // Updates go on after an evaluation.
  set_params(cpu, gpu, 7);
  a.update();
  d.update();
  expect_same_averages<T>(a, d, "an update after the evaluation");
}

TEST(CudaParamEma, UpdatesEvaluationAndStateMatchTheHostBitForBit) {
  TERSE_SKIP_WITHOUT_GPU();
  for (const std::string spec :
       {"decay=0.9", "decay=0.99,warmup=true",
        "warmup=true,warmup_power=0.75,update_after_step=2,min_decay=0.3"}) {
    compare_ema<float>(spec, DType::kF32);
    compare_ema<BFloat16>(spec, DType::kBF16);
    compare_ema<Half>(spec, DType::kF16);
  }
}

// A state dict saved before the first update loads on either device and leaves no EMA.
TEST(CudaParamEma, StateBeforeTheFirstUpdateMovesBetweenDevices) {
  TERSE_SKIP_WITHOUT_GPU();
  Model<float> cpu(kSizes, Device::cpu()), gpu(kSizes, Device::cuda(0));
  ParamEma a = ParamEma::from_spec("decay=0.9", cpu.params(DType::kF32));
  ParamEma b = ParamEma::from_spec("decay=0.9", gpu.params(DType::kF32));
  b.load_state_dict(a.state_dict());
  a.load_state_dict(b.state_dict());
  EXPECT_EQ(b.state_bytes(), 0u);
  EXPECT_TRUE(b.average(0).empty());
  EXPECT_THROW(b.load_into_params(), InvalidArgument);
}

// No GPU needed: the parameters are never read.
TEST(CudaParamEma, ParametersOfTwoDevicesAreRefused) {
  float p[4] = {}, q[4] = {};
  Param on_gpu, on_cpu;
  on_gpu.value = TensorView(p, 4, DType::kF32, Device::cuda(0));
  on_cpu.value = TensorView::of(q, 4);
  try {
    ParamEma::from_spec("decay=0.9", {on_cpu, on_gpu});
    FAIL() << "parameters of two devices were accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("is on cuda:0 but param 0 on cpu"), std::string::npos)
        << e.what();
  }
  ParamStateTask host{TensorView::of(q, 4), q};
  ParamStateTask device{TensorView(p, 4, DType::kF32, Device::cuda(0)), p};
  EXPECT_THROW(cpu_param_state_apply(EmaRule::copy_param(), {device}), InvalidArgument);
  EXPECT_THROW(cuda_param_state_apply(EmaRule::copy_param(), {host}), InvalidArgument);
  EXPECT_THROW(param_state_apply(EmaRule::copy_param(), {host, device}), InvalidArgument);
}

}  // namespace
}  // namespace terse

// CUDA multi-tensor executor against the CPU one, bit for bit, for every Rule it instantiates,
// on f32, bf16 and f16 params, with tensor sizes that leave odd tails in a chunk (1, 4097, a
// chunk and one more element, several chunks). Skipped, with a message, without a GPU.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gpu_skip.h"
#include "half_convert_probe.h"
#include "terse/core/dtype.h"
#include "terse/core/error.h"
#include "terse/core/philox.h"
#include "terse/kernels/cpu_multi_tensor.h"
#include "terse/kernels/cuda_info.h"
#include "terse/kernels/cuda_multi_tensor.h"

namespace terse {
namespace {

// Aligned (even index) and misaligned (odd) tensors, odd tails, an empty one, several chunks.
const std::vector<int64_t> kSizes = {
    1, 4097, kCudaChunkElements + 1,     3 * kCudaChunkElements + 5,
    0, 17,   2 * kCudaChunkElements + 3, 4099};

// Device copy of a host buffer, freed on destruction, starting `offset` bytes into its
// allocation (an offset that is not a multiple of 16 sends the kernel down its scalar path).
struct DeviceBuffer {
  void* base = nullptr;
  void* ptr = nullptr;
  size_t bytes = 0;
  DeviceBuffer(const void* host, size_t n, size_t offset) : bytes(n) {
    if (n == 0) return;
    EXPECT_EQ(cudaMalloc(&base, n + offset), cudaSuccess);
    ptr = static_cast<char*>(base) + offset;
    EXPECT_EQ(cudaMemcpy(ptr, host, n, cudaMemcpyHostToDevice), cudaSuccess);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (base != nullptr) cudaFree(base);
  }
  void to_host(void* host) const {
    if (bytes > 0) {
      EXPECT_EQ(cudaMemcpy(host, ptr, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
    }
  }
};

template <typename T>
T from_float(float v) {
  T out{};
  store_from_float(&out, 0, v);
  return out;
}

// Runs `steps` steps of rule(step) over kSizes tensors of storage type T on both executors and
// compares every param and state byte.
template <typename Rule, typename T>
void compare(const std::function<Rule(int64_t)>& rule_for_step, DType dtype, int steps,
             const std::string& name) {
  SCOPED_TRACE(name + " on " + dtype_name(dtype));
  constexpr int kN = Rule::kNumStates;
  const size_t count = kSizes.size();
  std::vector<std::vector<T>> p(count), g(count);
  std::vector<std::vector<float>> s(count * 4);
  for (size_t t = 0; t < count; ++t) {
    const auto n = static_cast<size_t>(kSizes[t]);
    PhiloxStream rng(77 + t, 5);
    p[t].resize(n);
    g[t].resize(n);
    for (size_t i = 0; i < n; ++i) {
      p[t][i] = from_float<T>(rng.uniform() * 2 - 1);
      g[t][i] = from_float<T>((rng.uniform() * 2 - 1) * 0.1f);
    }
    for (int k = 0; k < kN; ++k) {
      s[t * 4 + k].resize(n);
      // Second moments must be >= 0: every state starts in [0, 0.01).
      for (size_t i = 0; i < n; ++i) s[t * 4 + k][i] = rng.uniform() * 0.01f;
    }
  }
  std::vector<std::unique_ptr<DeviceBuffer>> dp, dg, ds;
  // Odd tensors start one element into their allocations: the kernel's scalar path; even ones
  // are aligned: its 4-element vector path.
  for (size_t t = 0; t < count; ++t) {
    const size_t off = t % 2 == 1 ? sizeof(T) : 0, soff = t % 2 == 1 ? sizeof(float) : 0;
    dp.push_back(std::make_unique<DeviceBuffer>(p[t].data(), p[t].size() * sizeof(T), off));
    dg.push_back(std::make_unique<DeviceBuffer>(g[t].data(), g[t].size() * sizeof(T), off));
    for (int k = 0; k < 4; ++k) {
      ds.push_back(std::make_unique<DeviceBuffer>(s[t * 4 + k].data(),
                                                  s[t * 4 + k].size() * sizeof(float), soff));
    }
  }
  for (int step = 1; step <= steps; ++step) {
    const Rule rule = rule_for_step(step);
    std::vector<CpuTensorTask<Rule>> cpu(count);
    std::vector<CudaTensorTask<Rule>> gpu(count);
    for (size_t t = 0; t < count; ++t) {
      const int64_t n = kSizes[t];
      cpu[t].rule = gpu[t].rule = rule;
      cpu[t].param = TensorView(p[t].data(), n, dtype);
      cpu[t].grad = TensorView(g[t].data(), n, dtype);
      gpu[t].param = TensorView(dp[t]->ptr, n, dtype, Device::cuda(0));
      gpu[t].grad = TensorView(dg[t]->ptr, n, dtype, Device::cuda(0));
      for (int k = 0; k < kN; ++k) {
        cpu[t].states[k] = s[t * 4 + k].data();
        gpu[t].states[k] = static_cast<float*>(ds[t * 4 + static_cast<size_t>(k)]->ptr);
      }
    }
    cpu_multi_tensor_apply(cpu);
    cuda_multi_tensor_apply(gpu);
  }
  cuda_synchronize();
  for (size_t t = 0; t < count; ++t) {
    SCOPED_TRACE("tensor of " + std::to_string(kSizes[t]) + " elements");
    std::vector<T> got(p[t].size());
    dp[t]->to_host(got.data());
    EXPECT_EQ(std::memcmp(got.data(), p[t].data(), got.size() * sizeof(T)), 0) << "param";
    for (int k = 0; k < kN; ++k) {
      std::vector<float> gs(s[t * 4 + k].size());
      ds[t * 4 + static_cast<size_t>(k)]->to_host(gs.data());
      EXPECT_EQ(std::memcmp(gs.data(), s[t * 4 + k].data(), gs.size() * sizeof(float)), 0)
          << "state " << k;
    }
  }
}

template <typename Rule>
void compare_all_dtypes(const std::function<Rule(int64_t)>& rule_for_step,
                        const std::string& name) {
  compare<Rule, float>(rule_for_step, DType::kF32, 3, name);
  compare<Rule, BFloat16>(rule_for_step, DType::kBF16, 3, name);
  compare<Rule, Half>(rule_for_step, DType::kF16, 3, name);
}

TEST(CudaMultiTensor, EveryRuleMatchesTheCpuExecutorBitForBit) {
  TERSE_SKIP_WITHOUT_GPU();
  compare_all_dtypes<SgdRule<false>>(
      [](int64_t t) { return SgdRule<false>::for_step(0.1, 0, 0, 1e-4, false, false, t); }, "sgd");
  compare_all_dtypes<SgdRule<true>>(
      [](int64_t t) { return SgdRule<true>::for_step(0.1, 0.9, 0, 1e-4, true, false, t); },
      "sgd nesterov");
  compare_all_dtypes<SgdSaiRule<false>>(
      [](int64_t t) { return SgdSaiRule<false>::for_step(0.01, 0, 0.01, t).for_tensor(3.5f); },
      "sgd_sai");
  compare_all_dtypes<SgdSaiRule<true>>(
      [](int64_t t) { return SgdSaiRule<true>::for_step(0.01, 0.9, 0.01, t).for_tensor(3.5f); },
      "sgd_sai momentum");
  compare_all_dtypes<AdamRule<false>>(
      [](int64_t t) {
        return AdamRule<false>::for_step(1e-3, 0.9, 0.999, 1e-8, 0.01, true, false, t);
      },
      "adamw");
  compare_all_dtypes<AdamRule<true>>(
      [](int64_t t) {
        return AdamRule<true>::for_step(1e-3, 0.9, 0.999, 1e-8, 0.01, false, false, t);
      },
      "adam amsgrad");
  compare_all_dtypes<LionRule>(
      [](int64_t t) { return LionRule::for_step(1e-4, 0.9, 0.99, 0.1, t); }, "lion");
  compare_all_dtypes<AdanRule>(
      [](int64_t t) { return AdanRule::for_step(1e-3, 0.98, 0.92, 0.99, 1e-8, 0.02, false, 0, t); },
      "adan");
  compare_all_dtypes<AdaBeliefRule<false>>(
      [](int64_t t) {
        return AdaBeliefRule<false>::for_step(1e-3, 0.9, 0.999, 1e-16, 0.0, true, false, true, true,
                                              t);
      },
      "adabelief");
  compare_all_dtypes<AdaBeliefRule<true>>(
      [](int64_t t) {
        return AdaBeliefRule<true>::for_step(1e-3, 0.9, 0.999, 1e-16, 0.01, false, false, false,
                                             false, t);
      },
      "adabelief amsgrad");
  compare_all_dtypes<DiffGradRule>(
      [](int64_t t) { return DiffGradRule::for_step(1e-3, 0.9, 0.999, 1e-8, 0.0, t); }, "diffgrad");
  compare_all_dtypes<ExAdamRule>(
      [](int64_t t) { return ExAdamRule::for_step(1e-3, 0.9, 0.999, 1e-8, 0.0, t); }, "exadam");
  compare_all_dtypes<SpamRule>(
      [](int64_t t) {
        return SpamRule::for_step(1e-3, 0.9, 0.999, 1e-6, 0.0, true, 5000, 1.0, false, true, t);
      },
      "spam");
}

// The GPU converts f16 with its instructions, the CPU with integer code: the same bits for every
// f16 and every f32 (NaN takes the integer code on both).
TEST(CudaMultiTensor, HalfConversionsAreTheCpusForEveryBitPattern) {
  TERSE_SKIP_WITHOUT_GPU();
  parity::HalfMismatches m;
  std::string error;
  ASSERT_TRUE(parity::gpu_half_mismatches(m, error)) << error;
  EXPECT_EQ(m.to_float, 0u) << "first f16 0x" << std::hex << m.first_to_float;
  EXPECT_EQ(m.to_half, 0u) << "first f32 0x" << std::hex << m.first_to_half;
  // The probe itself: an f16 NaN and an f32 that rounds must convert as the portable code says.
  EXPECT_EQ(float_to_bits(to_float(Half{0x7e01u})), 0x7fc02000u);
  EXPECT_EQ(to_half(65519.0f).bits, 0x7bffu);
  EXPECT_EQ(to_half(65520.0f).bits, 0x7c00u);
}

TEST(CudaMultiTensor, RefusesHostTensorsAndMismatchedGradsBeforeLaunching) {
  float p = 1, g = 1, s = 0;
  std::vector<CudaTensorTask<SgdRule<true>>> tasks(1);
  tasks[0].param = TensorView::of(&p, 1);
  tasks[0].grad = TensorView::of(&g, 1);
  tasks[0].states[0] = &s;
  try {
    cuda_multi_tensor_apply(tasks);
    FAIL() << "a host tensor was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 0 is on cpu"), std::string::npos) << e.what();
  }
  tasks[0].param = TensorView(&p, 1, DType::kF32, Device::cuda(0));
  tasks[0].grad = TensorView(&g, 2, DType::kF32, Device::cuda(0));
  try {
    cuda_multi_tensor_apply(tasks);
    FAIL() << "a grad of another numel was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("grad is f32[2] but its param f32[1]"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(p, 1.0f);
}

}  // namespace
}  // namespace terse

// The 8-bit optimizers (adam8bit, adamw8bit, momentum8bit, lion8bit) on CUDA tensors against
// themselves on CPU tensors, byte for byte: params, the 8-bit states (codes and absmax) and the
// f32 states of small tensors, after several steps, on f32, bf16 and f16 params, in two groups
// with different lrs; a state dict saved on one device resumes on the other. Sizes: empty,
// smaller than a block (f32 states), just below and at min_8bit_size, odd tails, several chunks
// of 32 blocks, and misaligned tensors (the kernel's scalar path). The GPU's nearest-code search
// gives the CPU's codes, ties included. Skipped, with a message, without a GPU, except the
// tests that need none.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "fast_ieee_probe.h"
#include "gpu_skip.h"
#include "quant_code_probe.h"
#include "terse/core/dtype.h"
#include "terse/core/error.h"
#include "terse/core/philox.h"
#include "terse/kernels/blockwise_quant.h"
#include "terse/kernels/cuda_eightbit_step.h"
#include "terse/kernels/cuda_multi_tensor.h"
#include "terse/kernels/dynamic_map.h"
#include "terse/optim/optimizer.h"

namespace terse {
namespace {

// 0: empty; 1, 17: smaller than a block (f32 states); 4095: f32 states, one below the default
// min_8bit_size; 4096: 8-bit, 16 whole blocks; 4097: an odd tail of 1; 5000: a tail of 136;
// 70001: 274 blocks (9 chunks of 32 blocks, the last short, a tail of 113); 24932: 97 blocks
// (4 chunks, a tail of 100).
const std::vector<int64_t> kSizes = {4097, 1, 70001, 17, 0, 4096, 4095, 5000, 24932};
// Element offsets into each device allocation: a tensor not aligned to 4 elements takes the
// kernel's scalar path for every block, an aligned one only for its last, partial block.
const std::vector<int64_t> kOffsets = {0, 0, 1, 0, 0, 3, 0, 0, 2};
constexpr size_t kFirstGroup = 4;  // tensors [0, 4) in group 0, the rest in group 1

struct Grads {
  // The first block of every tensor of >= 512 elements gets zero gradients: for lion8bit,
  // adam8bit and momentum8bit without weight decay its absmax stays 0 (the zero-code path).
  bool zero_block = true;
  // NaN, +inf or -inf at every 1013th element (from the 7th) of the tensors of >= nonfinite_from
  // elements.
  bool nonfinite = false;
  int64_t nonfinite_from = 0;
  // Every third element's gradient scaled down by 10^10 to 10^40 (subnormals included): Adam's
  // square root and division then leave the GPU step's branch-free range in some lanes of a
  // block, which run again with the compiler's forms (eightbit_kernel.cuh update_block).
  bool tiny = false;
};

// Host copies of a model's params and grads and, for CUDA, their device copies.
template <typename T>
struct Model {
  std::vector<std::vector<T>> p, g;
  std::vector<void*> dp_base, dg_base;
  std::vector<T*> dp, dg;
  Device device;
  Model(Device dev) : device(dev) {
    for (size_t t = 0; t < kSizes.size(); ++t) {
      PhiloxStream rng(31 + t, 2);
      p.emplace_back(static_cast<size_t>(kSizes[t]));
      g.emplace_back(static_cast<size_t>(kSizes[t]));
      for (T& x : p.back()) store_from_float(&x, 0, rng.uniform() * 2 - 1);
      if (dev.is_cuda()) {
        const size_t alloc = static_cast<size_t>(kSizes[t] + kOffsets[t]) * sizeof(T);
        dp_base.push_back(cuda_alloc_zeroed(dev.index, alloc));
        dg_base.push_back(cuda_alloc_zeroed(dev.index, alloc));
        dp.push_back(dp_base.back() == nullptr ? nullptr
                                               : static_cast<T*>(dp_base.back()) + kOffsets[t]);
        dg.push_back(dg_base.back() == nullptr ? nullptr
                                               : static_cast<T*>(dg_base.back()) + kOffsets[t]);
        cuda_copy(dp.back(), p[t].data(), bytes(t));
      }
    }
  }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  ~Model() {
    for (void* x : dp_base) cuda_free(x);
    for (void* x : dg_base) cuda_free(x);
  }
  size_t bytes(size_t t) const { return p[t].size() * sizeof(T); }
  std::vector<ParamGroup> groups(DType dtype, const OptionMap& second_group) {
    std::vector<ParamGroup> out(2);
    out[1].overrides = second_group;
    for (size_t t = 0; t < p.size(); ++t) {
      const auto n = static_cast<int64_t>(p[t].size());
      void* pv = device.is_cuda() ? static_cast<void*>(dp[t]) : static_cast<void*>(p[t].data());
      void* gv = device.is_cuda() ? static_cast<void*>(dg[t]) : static_cast<void*>(g[t].data());
      Param param;
      param.value = TensorView(pv, n, dtype, device);
      param.grad = TensorView(gv, n, dtype, device);
      param.shape.push_back(n);
      param.name = "t" + std::to_string(t);
      out[t < kFirstGroup ? 0 : 1].params.push_back(param);
    }
    return out;
  }
  // The gradient of `step`, the same on every device: uniform, scaled per element over four
  // decades (as real gradients are), so the states use many codes.
  void set_grads(int step, const Grads& opt) {
    for (size_t t = 0; t < g.size(); ++t) {
      PhiloxStream rng(1000 + static_cast<uint64_t>(step), t);
      const auto n = static_cast<int64_t>(g[t].size());
      for (int64_t i = 0; i < n; ++i) {
        float v = (rng.uniform() * 2 - 1) * std::pow(10.0f, static_cast<float>(i % 5) - 3.0f);
        if (opt.zero_block && n >= 512 && i < kQuantBlockSize) v = 0;
        if (opt.tiny && i % 3 == 1) v *= std::pow(10.0f, -10.0f - static_cast<float>(i % 31));
        if (opt.nonfinite && n >= opt.nonfinite_from && i % 1013 == 7) {
          const float kinds[3] = {std::numeric_limits<float>::quiet_NaN(),
                                  std::numeric_limits<float>::infinity(),
                                  -std::numeric_limits<float>::infinity()};
          v = kinds[(step + i / 1013) % 3];
        }
        store_from_float(&g[t][static_cast<size_t>(i)], 0, v);
      }
      if (device.is_cuda()) cuda_copy(dg[t], g[t].data(), bytes(t));
    }
  }
  void fetch() {
    if (!device.is_cuda()) return;
    for (size_t t = 0; t < p.size(); ++t) cuda_copy(p[t].data(), dp[t], bytes(t));
  }
};

// Whether two elements of `dtype` are equal: the same bits, or (nan_equal) both NaN.
bool same_element(const uint8_t* a, const uint8_t* b, DType dtype, bool nan_equal) {
  const size_t width = dtype_size(dtype);
  if (std::memcmp(a, b, width) == 0) return true;
  if (!nan_equal) return false;
  const auto is_nan = [dtype](const uint8_t* e) {
    switch (dtype) {
      case DType::kF32: {
        float x = 0;
        std::memcpy(&x, e, 4);
        return std::isnan(x);
      }
      case DType::kBF16: {
        BFloat16 x{};
        std::memcpy(&x, e, 2);
        return std::isnan(to_float(x));
      }
      case DType::kF16: {
        Half x{};
        std::memcpy(&x, e, 2);
        return std::isnan(to_float(x));
      }
      default:
        return false;  // codes compare exactly
    }
  };
  return is_nan(a) && is_nan(b);
}

// Expects `got` to equal `want` element by element, naming the first difference.
void expect_same_bytes(const std::vector<uint8_t>& want, const std::vector<uint8_t>& got,
                       DType dtype, bool nan_equal, const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  const size_t width = dtype_size(dtype);
  for (size_t i = 0; i + width <= want.size(); i += width) {
    if (!same_element(&want[i], &got[i], dtype, nan_equal)) {
      uint32_t x = 0, y = 0;
      std::memcpy(&x, &want[i], width);
      std::memcpy(&y, &got[i], width);
      ADD_FAILURE() << what << ": element " << i / width << " is 0x" << std::hex << y
                    << ", expected 0x" << x << std::dec;
      return;
    }
  }
}

template <typename T>
void expect_same_params(const Model<T>& want, const Model<T>& got, bool nan_equal,
                        const std::string& what) {
  for (size_t t = 0; t < want.p.size(); ++t) {
    std::vector<uint8_t> a(want.bytes(t)), b(got.bytes(t));
    if (!a.empty()) std::memcpy(a.data(), want.p[t].data(), a.size());
    if (!b.empty()) std::memcpy(b.data(), got.p[t].data(), b.size());
    expect_same_bytes(a, b, dtype_of<T>(), nan_equal, what + ", param t" + std::to_string(t));
  }
}

// The same keys, ints, floats and strings, and every tensor the same bytes (f32 NaNs of any
// payload alike when nan_equal).
void expect_same_state(const StateDict& want, const StateDict& got, bool nan_equal,
                       const std::string& what) {
  EXPECT_EQ(want.ints, got.ints) << what;
  EXPECT_EQ(want.floats, got.floats) << what;
  EXPECT_EQ(want.strings, got.strings) << what;
  ASSERT_EQ(want.tensors.size(), got.tensors.size()) << what;
  for (const auto& [key, t] : want.tensors) {
    const auto it = got.tensors.find(key);
    ASSERT_NE(it, got.tensors.end()) << what << ": no " << key;
    EXPECT_EQ(t.dtype, it->second.dtype) << what << ": " << key;
    EXPECT_EQ(t.shape, it->second.shape) << what << ": " << key;
    expect_same_bytes(t.bytes, it->second.bytes, t.dtype, nan_equal, what + ": " + key);
  }
}

// `spec` on CPU and CUDA tensors: 5 steps (the lr halved from step 3), then a state dict saved
// on each device resumes on the other for one more step.
template <typename T>
void compare(const std::string& spec, DType dtype, const Grads& grads, bool nan_equal = false) {
  SCOPED_TRACE(spec + " on " + dtype_name(dtype));
  const OptimizerSpec parsed = OptimizerSpec::parse(spec);
  const OptionMap second = {{"lr", "0.002"}};
  Model<T> cpu(Device::cpu()), gpu(Device::cuda(0));
  auto a = make_optimizer(parsed, cpu.groups(dtype, second));
  auto b = make_optimizer(parsed, gpu.groups(dtype, second));
  for (int step = 1; step <= 5; ++step) {
    if (step == 3) {
      a->scale_lr(0.5);
      b->scale_lr(0.5);
    }
    cpu.set_grads(step, grads);
    gpu.set_grads(step, grads);
    a->step();
    b->step();
  }
  gpu.fetch();
  expect_same_params(cpu, gpu, nan_equal, "after 5 steps");
  const StateDict sa = a->state_dict(), sb = b->state_dict();
  expect_same_state(sa, sb, nan_equal, "state dicts after 5 steps");
  EXPECT_EQ(a->state_bytes(), b->state_bytes());
  // Each device resumes from the other's state dict: one more step from the CUDA state on the
  // CPU, and from the CPU state on the GPU, equals one more step of the CPU run.
  Model<T> resumed(Device::cpu());
  resumed.p = cpu.p;
  auto c = make_optimizer(parsed, resumed.groups(dtype, second));
  c->load_state_dict(sb);
  auto d = make_optimizer(parsed, gpu.groups(dtype, second));
  d->load_state_dict(sa);
  cpu.set_grads(6, grads);
  resumed.set_grads(6, grads);
  gpu.set_grads(6, grads);
  a->step();
  c->step();
  d->step();
  gpu.fetch();
  expect_same_params(cpu, resumed, nan_equal, "CPU resumed from the CUDA state");
  expect_same_params(cpu, gpu, nan_equal, "CUDA resumed from the CPU state");
  const StateDict s6 = a->state_dict();
  expect_same_state(s6, c->state_dict(), nan_equal, "CPU resumed from the CUDA state");
  expect_same_state(s6, d->state_dict(), nan_equal, "CUDA resumed from the CPU state");
}

template <typename T>
void compare_all(const std::string& spec, DType dtype) {
  Grads grads;
  if (spec.rfind("adam", 0) == 0) {
    // Adam's 8-bit path skips non-finite gradients (params and states stay finite, so the
    // bytes compare exactly); its f32 path lets them through, so only 8-bit tensors get them.
    grads.nonfinite = true;
    grads.nonfinite_from = 5000;
  }
  compare<T>(spec, dtype, grads);
}

const std::vector<std::string> kSpecs = {
    "adam8bit:lr=0.01",
    "adamw8bit:lr=0.01,weight_decay=0.1",
    "adam8bit:lr=0.003,betas=0.8/0.99,eps=1e-6,weight_decay=0.05",
    "adam8bit:lr=0.01,min_8bit_size=5000",  // 4096 and 4097 keep f32 states
    "momentum8bit:lr=0.1,momentum=0.9",
    "momentum8bit:lr=0.05,momentum=0.5,weight_decay=1e-3",
    "lion8bit:lr=1e-3",
    "lion8bit:lr=3e-3,betas=0.95/0.98,weight_decay=0.1",
};

TEST(CudaEightBit, StepsStatesAndResumeMatchTheCpuBitForBitOnF32) {
  TERSE_SKIP_WITHOUT_GPU();
  for (const std::string& spec : kSpecs) compare_all<float>(spec, DType::kF32);
}

TEST(CudaEightBit, StepsStatesAndResumeMatchTheCpuBitForBitOnBf16) {
  TERSE_SKIP_WITHOUT_GPU();
  for (const std::string& spec : kSpecs) compare_all<BFloat16>(spec, DType::kBF16);
}

TEST(CudaEightBit, StepsStatesAndResumeMatchTheCpuBitForBitOnF16) {
  TERSE_SKIP_WITHOUT_GPU();
  for (const std::string& spec : kSpecs) compare_all<Half>(spec, DType::kF16);
}

TEST(CudaEightBit, TinyGradientsMatchTheCpuBitForBit) {
  TERSE_SKIP_WITHOUT_GPU();
  Grads grads;
  grads.tiny = true;
  for (const std::string& spec : kSpecs) {
    compare<float>(spec, DType::kF32, grads);
    compare<Half>(spec, DType::kF16, grads);
  }
}

// NaN and inf gradients everywhere: inf states, NaN absmax (the quiet NaN 0x7fc00000 on both
// devices), inf * (1 / inf) = NaN quantized to code 0; every byte the CPU's except the payload
// of NaN params and f32 states (x86 and CUDA make different NaNs from the same operands).
TEST(CudaEightBit, NonFiniteGradientsGiveTheCpuResultUpToNanPayloads) {
  TERSE_SKIP_WITHOUT_GPU();
  Grads grads;
  grads.nonfinite = true;
  for (const std::string& spec : kSpecs) {
    compare<float>(spec, DType::kF32, grads, true);
    compare<BFloat16>(spec, DType::kBF16, grads, true);
  }
}

// The 8-bit step's branch-free division and square root (and Adam's square root then division)
// give the bits of `/` and sqrtf wherever they do not send the caller to those (2^28 draws of each,
// about a third of them in the fast ranges' edges and past them); enough operands take the fast
// forms for the check to mean something.
TEST(CudaEightBit, BranchFreeDivisionAndSquareRootAreIeeeWhereTheyApply) {
  TERSE_SKIP_WITHOUT_GPU();
  parity::FastIeeeCounts c;
  std::string error;
  constexpr uint64_t kDraws = uint64_t{1} << 28;
  ASSERT_TRUE(parity::gpu_check_fast_ieee(kDraws, 20261125, c, error)) << error;
  EXPECT_EQ(c.div_wrong, 0u) << "e.g. a = 0x" << std::hex << c.div_example[0] << ", b = 0x"
                             << c.div_example[1];
  EXPECT_EQ(c.sqrt_wrong, 0u) << "e.g. x = 0x" << std::hex << c.sqrt_example;
  EXPECT_EQ(c.sqrt_div_wrong, 0u);
  EXPECT_GT(c.div_fast, kDraws / 4);
  EXPECT_GT(c.sqrt_fast, kDraws / 2);
  EXPECT_GT(c.sqrt_div_fast, kDraws / 4);
  EXPECT_LT(c.div_fast, kDraws);  // the slow cases are drawn too
  EXPECT_LT(c.sqrt_fast, kDraws);
}

// Probes of dynamic_map_code: every code and every midpoint with 3 ulp either side, both signs,
// the special values, random bit patterns and log-uniform magnitudes.
std::vector<float> code_probes() {
  std::vector<float> x;
  for (const DynamicMap* m : {&DynamicMap::signed_map(), &DynamicMap::unsigned_map()}) {
    for (int c = 0; c < DynamicMap::kCodes; ++c) {
      const float v = m->value(static_cast<uint8_t>(c));
      const float next = c + 1 < DynamicMap::kCodes ? m->value(static_cast<uint8_t>(c + 1)) : v;
      for (const float at : {v, (v + next) * 0.5f}) {
        for (const float s : {1.0f, -1.0f}) {
          float lo = s * at, hi = s * at;
          x.push_back(lo);
          for (int u = 0; u < 3; ++u) {
            lo = std::nextafter(lo, -INFINITY);
            hi = std::nextafter(hi, INFINITY);
            x.push_back(lo);
            x.push_back(hi);
          }
        }
      }
    }
  }
  using L = std::numeric_limits<float>;
  for (const float v : {0.0f, -0.0f, L::quiet_NaN(), -L::quiet_NaN(), L::infinity(), -L::infinity(),
                        L::denorm_min(), -L::denorm_min(), L::min(), -L::min(), L::max(), -L::max(),
                        1.0f, -1.0f, 2.0f, -2.0f}) {
    x.push_back(v);
  }
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> exponent(-9.0f, 0.5f);
  for (int k = 0; k < 500000; ++k) {
    x.push_back(bits_to_float(static_cast<uint32_t>(rng())));
    const float v = std::pow(10.0f, exponent(rng));
    x.push_back(rng() & 1u ? -v : v);
  }
  return x;
}

TEST(CudaEightBit, NearestCodeSearchGivesTheCpuCodesIncludingTies) {
  TERSE_SKIP_WITHOUT_GPU();
  const std::vector<float> x = code_probes();
  for (const DynamicMap* m : {&DynamicMap::signed_map(), &DynamicMap::unsigned_map()}) {
    SCOPED_TRACE(m->is_signed() ? "signed map" : "unsigned map");
    // 1: the values themselves (exact midpoints: ties); others: as quantize_block scales them.
    for (const float scale : {1.0f, 1.0f / 0.37f, 1.0f / 3.0e-5f, 1.0f / 7.5e3f}) {
      std::vector<uint8_t> cpu(x.size()), gpu;
      m->quantize_scaled(x.data(), static_cast<int64_t>(x.size()), scale, cpu.data());
      std::string error;
      ASSERT_TRUE(parity::gpu_map_codes(cuda_quant_map(*m), x, scale, gpu, error)) << error;
      int64_t bad = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        if (cpu[i] == gpu[i]) continue;
        if (++bad <= 5) {
          ADD_FAILURE() << "x = " << x[i] << " (0x" << std::hex << float_to_bits(x[i]) << std::dec
                        << ") * " << scale << ": GPU code " << int{gpu[i]} << ", CPU code "
                        << int{cpu[i]};
        }
      }
      EXPECT_EQ(bad, 0) << "of " << x.size() << " probes, scale " << scale;
    }
  }
}

// No GPU needed: construction reads no parameter memory.
TEST(CudaEightBit, AcceptCudaParamsAndRefuseMixedDevices) {
  float p[4] = {}, g[4] = {}, q[4] = {}, h[4] = {};
  Param gpu_param, cpu_param;
  gpu_param.value = TensorView(p, 4, DType::kF32, Device::cuda(0));
  gpu_param.grad = TensorView(g, 4, DType::kF32, Device::cuda(0));
  cpu_param.value = TensorView::of(q, 4);
  cpu_param.grad = TensorView::of(h, 4);
  for (const std::string spec :
       {"adam8bit", "adamw8bit", "momentum8bit:momentum=0.9", "lion8bit"}) {
    SCOPED_TRACE(spec);
    EXPECT_NO_THROW(make_optimizer(spec, {gpu_param}));
    try {
      make_optimizer(spec, {gpu_param, cpu_param});
      ADD_FAILURE() << "mixed devices were accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("one optimizer steps the parameters of one device"),
                std::string::npos)
          << e.what();
    }
  }
}

// Only empty tensors: nothing to allocate or launch (a grid of 0 thread blocks would be an
// error), so no GPU is needed either.
TEST(CudaEightBit, StepsOfOnlyEmptyTensorsLaunchNothing) {
  Param param;
  param.value = TensorView(nullptr, 0, DType::kF32, Device::cuda(0));
  param.grad = TensorView(nullptr, 0, DType::kF32, Device::cuda(0));
  for (const std::string spec :
       {"adam8bit", "adamw8bit", "momentum8bit:momentum=0.9", "lion8bit"}) {
    SCOPED_TRACE(spec);
    auto opt = make_optimizer(spec, {param});
    opt->step();
    opt->step();
    EXPECT_EQ(opt->step_count(), 2);
    EXPECT_EQ(opt->state_bytes(), 0u);
    auto again = make_optimizer(spec, {param});
    again->load_state_dict(opt->state_dict());
    EXPECT_EQ(again->step_count(), 2);
  }
}

}  // namespace
}  // namespace terse

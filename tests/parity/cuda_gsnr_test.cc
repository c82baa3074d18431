// cuda_gsnr_sums (SGD-SaI's g-SNR on the GPU) against gsnr_sums on the host: the same sums, bit
// for bit, for f32/bf16/f16 gradients of 1 element to just over a million, one call over all of
// them, with values whose sums depend on the order: a wide range of magnitudes, a large mean
// (the deviations cancel), constant tensors. Built with -ffp-contract=off (CMakeLists.txt), as
// src/optim is, so the host reference rounds as the optimizer does.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gpu_skip.h"
#include "terse/core/dtype.h"
#include "terse/core/error.h"
#include "terse/kernels/cuda_gsnr.h"
#include "terse/kernels/cuda_multi_tensor.h"
#include "terse/kernels/gsnr.h"

namespace terse {
namespace {

enum class Values { kSmall, kWide, kOffset, kConstant };

// One gradient in host memory stored as `dtype`, and its copy on GPU 0.
struct Grad {
  DType dtype;
  int64_t n;
  std::vector<unsigned char> host;
  void* dev = nullptr;

  Grad(DType dt, int64_t count, Values kind, uint64_t seed) : dtype(dt), n(count) {
    host.assign(static_cast<size_t>(n) * dtype_size(dtype), 0);
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(-1, 1);
    const int e_max = dtype == DType::kF16 ? 6 : 30;
    std::uniform_int_distribution<int> e(-e_max, e_max);
    for (int64_t i = 0; i < n; ++i) {
      double x = 0.1 * u(rng);
      if (kind == Values::kWide) x = std::ldexp(u(rng), e(rng));
      if (kind == Values::kOffset) x = 100 + u(rng);
      if (kind == Values::kConstant) x = 0.3;
      set(i, static_cast<float>(x));
    }
    dev = cuda_alloc_zeroed(0, host.size());
    cuda_copy(dev, host.data(), host.size());
  }
  Grad(const Grad&) = delete;
  Grad& operator=(const Grad&) = delete;
  ~Grad() { cuda_free(dev); }

  void set(int64_t i, float x) {
    switch (dtype) {
      case DType::kBF16:
        store_from_float(reinterpret_cast<BFloat16*>(host.data()), i, x);
        break;
      case DType::kF16:
        store_from_float(reinterpret_cast<Half*>(host.data()), i, x);
        break;
      default:
        store_from_float(reinterpret_cast<float*>(host.data()), i, x);
        break;
    }
  }
  GsnrSums on_host() const {
    switch (dtype) {
      case DType::kBF16:
        return gsnr_sums(reinterpret_cast<const BFloat16*>(host.data()), n);
      case DType::kF16:
        return gsnr_sums(reinterpret_cast<const Half*>(host.data()), n);
      default:
        return gsnr_sums(reinterpret_cast<const float*>(host.data()), n);
    }
  }
  TensorView view() const { return TensorView(dev, n, dtype, Device::cuda(0)); }
};

bool same_bits(const GsnrSums& a, const GsnrSums& b) {
  return std::memcmp(&a.sum_sq, &b.sum_sq, sizeof(double)) == 0 &&
         std::memcmp(&a.dev, &b.dev, sizeof(double)) == 0;
}

TEST(CudaGsnr, SumsMatchTheHostBitForBit) {
  TERSE_SKIP_WITHOUT_GPU();
  std::vector<std::unique_ptr<Grad>> grads;
  std::vector<std::string> names;
  uint64_t seed = 1;
  for (const DType dt : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (const int64_t n : {int64_t{0}, int64_t{1}, int64_t{2}, int64_t{7}, int64_t{2047},
                            int64_t{2048}, int64_t{2049}, int64_t{4097}, int64_t{70001}}) {
      for (const Values v : {Values::kSmall, Values::kWide, Values::kOffset, Values::kConstant}) {
        grads.push_back(std::make_unique<Grad>(dt, n, v, seed++));
        names.push_back(std::string(dtype_name(dt)) + "[" + std::to_string(n) + "] values " +
                        std::to_string(static_cast<int>(v)));
      }
    }
    grads.push_back(std::make_unique<Grad>(dt, (int64_t{1} << 20) + 3, Values::kWide, seed++));
    names.push_back(std::string(dtype_name(dt)) + "[2^20 + 3] wide");
  }
  std::vector<TensorView> views;
  for (const auto& g : grads) views.push_back(g->view());
  const std::vector<GsnrSums> got = cuda_gsnr_sums(views);
  ASSERT_EQ(got.size(), grads.size());
  for (size_t i = 0; i < grads.size(); ++i) {
    const GsnrSums want = grads[i]->on_host();
    EXPECT_TRUE(same_bits(got[i], want))
        << names[i] << ": GPU sum_sq " << got[i].sum_sq << " dev " << got[i].dev << ", host sum_sq "
        << want.sum_sq << " dev " << want.dev;
  }
  // One tensor alone, and an empty call.
  EXPECT_TRUE(same_bits(cuda_gsnr_sums({grads[5]->view()})[0], grads[5]->on_host()));
  EXPECT_TRUE(cuda_gsnr_sums({}).empty());
}

// No GPU needed: checked before any CUDA call.
TEST(CudaGsnr, RefusesHostTensorsAndMixedDevices) {
  float g[4] = {1, 2, 3, 4};
  try {
    cuda_gsnr_sums({TensorView::of(g, 4)});
    FAIL() << "a host tensor was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("pass CUDA tensors"), std::string::npos) << e.what();
  }
  EXPECT_THROW(cuda_gsnr_sums({TensorView(g, 4, DType::kF32, Device::cuda(0)),
                               TensorView(g, 4, DType::kF32, Device::cuda(1))}),
               InvalidArgument);
}

}  // namespace
}  // namespace terse

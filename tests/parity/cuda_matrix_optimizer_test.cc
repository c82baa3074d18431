// muon, auon and frugal on CUDA tensors against the same optimizer on CPU tensors
// (docs/optimizers.md, "On the GPU"), over square, tall, wide, conv-shaped (4-D), batched (3-D),
// 1 x n, 1-element, 1-D and empty parameters, several steps, f32, bf16 and f16 storage, and a
// state dict saved on one device resuming on the other.
//   auon, frugal: bit for bit (the same Rules, auon_cosh, and AuON's sums in the CPU's order).
//   muon: the state (momentum, aux Adam moments) and every non-matrix parameter bit for bit; the
//   matrix parameters within the tolerance of the Newton-Schulz products, which cuBLAS sums in
//   another order than CBLAS (derivation in docs/optimizers.md, "Muon on the GPU"):
//     ns_bf16=false: every output within 1e-4 of max|X| (2e-5 norm-wise); measured between four
//       f32 summation orders on the CPU: <= 4.5e-6 (2.5e-6) for sides up to 512;
//     ns_bf16=true: a different f32 sum can flip one bf16 rounding, which the quintic amplifies:
//       four orders on the CPU land up to 0.026 apart norm-wise (0.07 of max|X| element-wise),
//       each as far from the f32 iteration as the others (0.024-0.042, within 2 %). So the GPU
//       is held to 0.06 norm-wise from the CPU and to 1.25 x the CPU's own distance (+ 5e-3) from
//       the f32 iteration, and its outputs must be bf16 values;
//     ns_steps=0: no product, bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "gpu_skip.h"
#include "parity_model.h"
#include "terse/core/dtype.h"
#include "terse/core/error.h"
#include "terse/core/philox.h"
#include "terse/kernels/cuda_multi_tensor.h"
#include "terse/optim/cuda_newton_schulz.h"
#include "terse/optim/newton_schulz.h"
#include "terse/optim/optimizer.h"

namespace terse {
namespace {

using parity::numel_of;
using parity::Shape;

// Square, tall, wide, 4-D (viewed as (8, 36)), 3-D (a batch of 3), 1 x n, 1-element, 1-D, empty,
// and one of 77100 elements (two chunks of the multi-tensor executor).
const std::vector<Shape> kShapes = {{64, 64}, {96, 40}, {40, 96}, {8, 4, 3, 3}, {3, 16, 24},
                                    {1, 50},  {1},      {33},     {0, 4},       {300, 257}};

// The model of kShapes; tensor 0's gradient is zero at step 3 (AuON's ||G|| may then still be
// non-zero through the momentum), the 1-D tensor 7's at step 1, where ||G|| = 0 exactly.
template <typename T>
struct Model : parity::ParityModel<T> {
  using parity::ParityModel<T>::ParityModel;
  void set_grads(int step) {
    parity::ParityModel<T>::set_grads(
        step, [](size_t t, int s) { return (t == 0 && s == 3) || (t == 7 && s == 1); });
  }
};

template <typename T>
std::vector<double> as_double(const std::vector<T>& v) {
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = load_as_float(v.data(), static_cast<int64_t>(i));
  return out;
}

// ||a - b|| / ||b|| (0 when both are 0).
double norm_error(const std::vector<double>& a, const std::vector<double>& b) {
  double d2 = 0, b2 = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d2 += (a[i] - b[i]) * (a[i] - b[i]);
    b2 += b[i] * b[i];
  }
  return d2 == 0 ? 0 : std::sqrt(d2 / b2);
}

// max |a - b| / max |b|.
double max_error(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0, m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, std::fabs(a[i] - b[i]));
    m = std::max(m, std::fabs(b[i]));
  }
  return d == 0 ? 0 : d / m;
}

std::vector<double> minus(std::vector<double> a, const std::vector<double>& b) {
  for (size_t i = 0; i < a.size(); ++i) a[i] -= b[i];
  return a;
}

// ---- CudaNewtonSchulz against NewtonSchulz ----

struct NsCase {
  int64_t batch, rows, cols;
};

// The GPU iteration on x (host values), returned on the host.
std::vector<float> gpu_ns(CudaNewtonSchulz& ns, const std::vector<float>& x, const NsCase& c,
                          const NewtonSchulzOptions& o) {
  const size_t bytes = x.size() * sizeof(float);
  void* d = cuda_alloc_zeroed(0, bytes);
  std::vector<float> out(x.size());
  try {
    cuda_copy(d, x.data(), bytes);
    ns.run(static_cast<float*>(d), c.batch, c.rows, c.cols, o);
    cuda_copy(out.data(), d, bytes);
  } catch (...) {
    cuda_free(d);
    throw;
  }
  cuda_free(d);
  return out;
}

std::vector<float> cpu_ns(std::vector<float> x, const NsCase& c, const NewtonSchulzOptions& o) {
  NewtonSchulz ns;
  ns.run(x.data(), c.batch, c.rows, c.cols, o);
  return x;
}

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

TEST(CudaNewtonSchulz, MatchesTheCpuIterationWithinItsTolerance) {
  TERSE_SKIP_WITHOUT_GPU();
  const NsCase cases[] = {{1, 64, 64}, {1, 48, 80}, {1, 80, 48}, {3, 16, 24},   {2, 24, 16},
                          {1, 1, 50},  {1, 50, 1},  {1, 1, 1},   {1, 128, 512}, {1, 300, 257}};
  CudaNewtonSchulz ns(0);  // one object: its work memory grows and is reused across sizes
  for (const NsCase& c : cases) {
    for (int seed = 0; seed < 2; ++seed) {
      SCOPED_TRACE(std::to_string(c.batch) + " x " + std::to_string(c.rows) + " x " +
                   std::to_string(c.cols) + ", seed " + std::to_string(seed));
      std::vector<float> x(static_cast<size_t>(c.batch * c.rows * c.cols));
      PhiloxStream rng(7 + static_cast<uint64_t>(seed), 3);
      for (float& v : x) v = (rng.uniform() * 2 - 1) * 0.1f;
      NewtonSchulzOptions f32;
      f32.bf16 = false;
      NewtonSchulzOptions bf16;
      // No products: the normalisation alone, bit for bit in both modes.
      for (NewtonSchulzOptions o : {f32, bf16}) {
        o.steps = 0;
        const std::vector<float> a = cpu_ns(x, c, o), b = gpu_ns(ns, x, c, o);
        EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0)
            << "ns_steps=0, bf16=" << o.bf16;
      }
      // f32: within the f32 tolerance, after 1 and 5 iterations.
      for (int steps : {1, 5}) {
        NewtonSchulzOptions o = f32;
        o.steps = steps;
        const auto a = to_double(cpu_ns(x, c, o)), b = to_double(gpu_ns(ns, x, c, o));
        EXPECT_LE(max_error(b, a), 1e-4) << "f32, " << steps << " steps";
        EXPECT_LE(norm_error(b, a), 2e-5) << "f32, " << steps << " steps";
      }
      // bf16: bf16 values, as close to the f32 iteration as the CPU's emulation is.
      const auto exact = to_double(cpu_ns(x, c, f32));
      const std::vector<float> gb = gpu_ns(ns, x, c, bf16);
      for (float v : gb) ASSERT_EQ(v, to_float(to_bfloat16(v))) << "not a bf16 value";
      const auto a = to_double(cpu_ns(x, c, bf16)), b = to_double(gb);
      EXPECT_LE(norm_error(b, a), 0.06) << "bf16: from the CPU's bf16 iteration";
      EXPECT_LE(norm_error(b, exact), 1.25 * norm_error(a, exact) + 5e-3)
          << "bf16: from the f32 iteration (the CPU's bf16 is " << norm_error(a, exact) << ")";
    }
  }
}

TEST(CudaNewtonSchulz, RefusesBadSizes) {
  TERSE_SKIP_WITHOUT_GPU();
  CudaNewtonSchulz ns(0);
  NewtonSchulzOptions o;
  EXPECT_THROW(ns.run(nullptr, 1, -1, 3, o), InvalidArgument);
  o.steps = -1;
  EXPECT_THROW(ns.run(nullptr, 1, 2, 3, o), InvalidArgument);
  o.steps = 5;
  ns.run(nullptr, 0, 2, 3, o);  // nothing to do
  EXPECT_THROW(ns.run(nullptr, 1, 2, 3, o), InvalidArgument);
}

// ---- the optimizers ----

// After `steps` steps on both devices: the CPU and GPU optimizers and their models.
template <typename T>
struct Pair {
  Model<T> cpu{kShapes, Device::cpu()}, gpu{kShapes, Device::cuda(0)};
  std::unique_ptr<Optimizer> a, b;
  Pair(const std::string& spec, DType dtype, int steps) {
    a = make_optimizer(spec, cpu.params(dtype));
    b = make_optimizer(spec, gpu.params(dtype));
    for (int step = 1; step <= steps; ++step) {
      cpu.set_grads(step);
      gpu.set_grads(step);
      a->step();
      b->step();
    }
    gpu.fetch();
  }
};

// Runs `spec` on both devices for 4 steps, expects the same params and state bit for bit, and
// each device resuming the other's state dict for a fifth step with the same result.
template <typename T>
void expect_bit_for_bit(const std::string& spec, DType dtype) {
  SCOPED_TRACE(spec + " on " + dtype_name(dtype));
  Pair<T> r(spec, dtype, 4);
  for (size_t t = 0; t < kShapes.size(); ++t) {
    EXPECT_EQ(std::memcmp(r.cpu.p[t].data(), r.gpu.p[t].data(), r.cpu.bytes(t)), 0)
        << "tensor " << t;
  }
  const StateDict sa = r.a->state_dict(), sb = r.b->state_dict();
  EXPECT_TRUE(sa == sb) << "the state dicts differ";
  EXPECT_EQ(r.a->state_bytes(), r.b->state_bytes());
  Model<T> resumed(kShapes, Device::cpu());
  resumed.p = r.cpu.p;
  auto c = make_optimizer(spec, resumed.params(dtype));
  c->load_state_dict(sb);
  auto d = make_optimizer(spec, r.gpu.params(dtype));
  d->load_state_dict(sa);
  r.cpu.set_grads(5);
  resumed.set_grads(5);
  r.gpu.set_grads(5);
  r.a->step();
  c->step();
  d->step();
  r.gpu.fetch();
  for (size_t t = 0; t < kShapes.size(); ++t) {
    EXPECT_EQ(std::memcmp(r.cpu.p[t].data(), resumed.p[t].data(), r.cpu.bytes(t)), 0)
        << "CPU resumed from the CUDA state, tensor " << t;
    EXPECT_EQ(std::memcmp(r.cpu.p[t].data(), r.gpu.p[t].data(), r.cpu.bytes(t)), 0)
        << "CUDA resumed from the CPU state, tensor " << t;
  }
  EXPECT_TRUE(d->state_dict() == r.a->state_dict()) << "state after resuming on CUDA";
}

TEST(CudaAuon, StepsStateAndResumeMatchTheCpuBitForBit) {
  TERSE_SKIP_WITHOUT_GPU();
  // gamma=100 overflows cosh on the 1-element tensor: an infinite sum, coef -0 (decay only).
  for (const std::string spec :
       {"auon:lr=0.1,weight_decay=0.2", "auon:paper=true,momentum=0.9", "auon:gamma=100,lr=0.05"}) {
    expect_bit_for_bit<float>(spec, DType::kF32);
    expect_bit_for_bit<BFloat16>(spec, DType::kBF16);
    expect_bit_for_bit<Half>(spec, DType::kF16);
  }
}

TEST(CudaFrugal, StepsStateAndResumeMatchTheCpuBitForBit) {
  TERSE_SKIP_WITHOUT_GPU();
  // 8 matrices (ndim >= 2, the empty one included): density 0.25 activates 2 blocks, 0.5 four.
  // update_gap 2 refreshes at steps 1, 3, 5 (the resumed step is a refresh); 3 at 1 and 4.
  for (const std::string spec :
       {"frugal:lr=0.01,update_gap=2",
        "frugal:lr=0.01,update_gap=3,block_order=ascending,density=0.5",
        "frugal:lr=0.01,update_gap=2,block_order=mirror,density=0.5,weight_decay=0.1",
        "frugal:lr=0.01,update_gap=2,subspace=coord",
        "frugal:lr=0.01,update_gap=3,subspace=coord,coord_choice=rows,reset_statistics=false",
        "frugal:lr=0.01,update_gap=2,subspace=coord,coord_choice=random,inactive_update_rule=sgd",
        "frugal:lr=0.01,update_gap=2,inactive_update_rule=no,correct_bias=false,"
        "proj_params_lr_scale=0.5,inactive_lr_scale=0.1"}) {
    expect_bit_for_bit<float>(spec, DType::kF32);
    expect_bit_for_bit<BFloat16>(spec, DType::kBF16);
    expect_bit_for_bit<Half>(spec, DType::kF16);
  }
}

// Muon's aux-Adam-only configuration has no products: bit for bit like the others.
TEST(CudaMuon, AuxAdamAndNoIterationMatchTheCpuBitForBit) {
  TERSE_SKIP_WITHOUT_GPU();
  for (const std::string spec :
       {"muon:use_muon=false,adam_lr=0.01,adam_weight_decay=0.1", "muon:ns_steps=0",
        "muon:ns_steps=0,ns_bf16=false,nesterov=false,weight_decay=0.1"}) {
    expect_bit_for_bit<float>(spec, DType::kF32);
    expect_bit_for_bit<BFloat16>(spec, DType::kBF16);
    expect_bit_for_bit<Half>(spec, DType::kF16);
  }
}

bool is_matrix(const Shape& s) { return s.size() >= 2 && numel_of(s) > 0; }

// sqrt(max(1, rows / cols)) over the last two dims, Muon's update scale.
double muon_scale(const Shape& s) {
  return std::sqrt(
      std::max(1.0, static_cast<double>(s[s.size() - 2]) / static_cast<double>(s[s.size() - 1])));
}

// One unit in the last place of storage type T at |v|.
template <typename T>
double storage_ulp(double v) {
  const int mantissa = sizeof(T) == 4 ? 23 : (std::is_same_v<T, BFloat16> ? 7 : 10);
  int e = 0;
  std::frexp(std::max(std::fabs(v), 1e-3), &e);
  return std::ldexp(1.0, e - 1 - mantissa);
}

// Muon with products: state and non-matrix params bit for bit; matrix params within the
// products' tolerance (top of this file), also after resuming across devices.
template <typename T>
void expect_muon_close(const std::string& spec, DType dtype, bool bf16_ns, double lr) {
  SCOPED_TRACE(spec + " on " + dtype_name(dtype));
  constexpr int kSteps = 5;
  Pair<T> r(spec, dtype, kSteps);
  Model<T> init(kShapes, Device::cpu());  // the initial values
  // The CPU with an f32 iteration: how far bf16 rounding alone takes the CPU.
  std::unique_ptr<Pair<T>> exact;
  if (bf16_ns && dtype == DType::kF32) {
    exact = std::make_unique<Pair<T>>(spec + ",ns_bf16=false", dtype, kSteps);
  }
  const auto check = [&](const Model<T>& gpu, int steps, const char* what) {
    for (size_t t = 0; t < kShapes.size(); ++t) {
      SCOPED_TRACE(std::string(what) + ", tensor " + std::to_string(t));
      if (!is_matrix(kShapes[t])) {
        EXPECT_EQ(std::memcmp(r.cpu.p[t].data(), gpu.p[t].data(), r.cpu.bytes(t)), 0);
        continue;
      }
      const auto p0 = as_double(init.p[t]);
      const auto dc = minus(as_double(r.cpu.p[t]), p0), dg = minus(as_double(gpu.p[t]), p0);
      if (dtype == DType::kF32) {
        EXPECT_LE(norm_error(dg, dc), bf16_ns ? 0.06 : 1e-4);
        if (exact) {
          const auto de = minus(as_double(exact->cpu.p[t]), p0);
          EXPECT_LE(norm_error(dg, de), 1.25 * norm_error(dc, de) + 5e-3);
        }
      } else {
        // 16-bit storage: each step may round p the other way (one unit, taken at the larger of
        // the two values, twice for a binade crossed), besides the products' error (|X| <= 1.2).
        const double per_step = lr * muon_scale(kShapes[t]) * (bf16_ns ? 0.15 : 1e-4) * 1.2;
        const auto pc = as_double(r.cpu.p[t]), pg = as_double(gpu.p[t]);
        for (size_t k = 0; k < pc.size(); ++k) {
          const double ulp = storage_ulp<T>(std::max(std::fabs(pc[k]), std::fabs(pg[k])));
          ASSERT_LE(std::fabs(pc[k] - pg[k]), steps * (2 * ulp + per_step)) << "element " << k;
        }
      }
    }
  };
  check(r.gpu, kSteps, "after 5 steps");
  const StateDict sa = r.a->state_dict(), sb = r.b->state_dict();
  EXPECT_TRUE(sa == sb) << "the state dicts differ";
  EXPECT_EQ(r.a->state_bytes(), r.b->state_bytes());
  // The CPU resumes from the CUDA state bit for bit (the state is the CPU's); CUDA resumes from
  // the CPU's state with its own params, within the tolerance.
  Model<T> resumed(kShapes, Device::cpu());
  resumed.p = r.cpu.p;
  auto c = make_optimizer(spec, resumed.params(dtype));
  c->load_state_dict(sb);
  auto d = make_optimizer(spec, r.gpu.params(dtype));
  d->load_state_dict(sa);
  r.cpu.set_grads(kSteps + 1);
  resumed.set_grads(kSteps + 1);
  r.gpu.set_grads(kSteps + 1);
  r.a->step();
  c->step();
  d->step();
  r.gpu.fetch();
  exact.reset();  // its trajectory stops at step 5
  for (size_t t = 0; t < kShapes.size(); ++t) {
    EXPECT_EQ(std::memcmp(r.cpu.p[t].data(), resumed.p[t].data(), r.cpu.bytes(t)), 0)
        << "CPU resumed from the CUDA state, tensor " << t;
  }
  check(r.gpu, kSteps + 1, "CUDA resumed from the CPU state");
  EXPECT_TRUE(d->state_dict() == r.a->state_dict()) << "state after resuming on CUDA";
}

TEST(CudaMuon, MatchesTheCpuWithinTheProductsTolerance) {
  TERSE_SKIP_WITHOUT_GPU();
  const struct {
    const char* spec;
    bool bf16_ns;
    double lr;
  } cases[] = {{"muon:lr=0.02,ns_bf16=false,weight_decay=0.1", false, 0.02},
               {"muon:lr=0.02,ns_bf16=false,nesterov=false,ns_steps=2", false, 0.02},
               {"muon:lr=0.02", true, 0.02},
               {"muon:lr=0.05,momentum=0.9,adam_lr=0.01", true, 0.05}};
  for (const auto& c : cases) {
    expect_muon_close<float>(c.spec, DType::kF32, c.bf16_ns, c.lr);
    expect_muon_close<BFloat16>(c.spec, DType::kBF16, c.bf16_ns, c.lr);
    expect_muon_close<Half>(c.spec, DType::kF16, c.bf16_ns, c.lr);
  }
}

// No GPU needed: the parameters are never read.
TEST(CudaMatrixOptimizers, AcceptCudaParamsAndRefuseMixedDevices) {
  float p[4] = {}, g[4] = {}, q[4] = {}, h[4] = {};
  Param gpu;
  gpu.value = TensorView(p, 4, DType::kF32, Device::cuda(0));
  gpu.grad = TensorView(g, 4, DType::kF32, Device::cuda(0));
  gpu.shape = {2, 2};
  Param cpu;
  cpu.value = TensorView::of(q, 4);
  cpu.grad = TensorView::of(h, 4);
  cpu.shape = {2, 2};
  for (const std::string spec : {"muon", "auon", "frugal"}) {
    SCOPED_TRACE(spec);
    EXPECT_NO_THROW(make_optimizer(spec, {gpu}));
    try {
      make_optimizer(spec, {gpu, cpu});
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

// CudaDgcSelector against the CPU DGC selection, bit for bit: dgc_select_planned (threshold
// adaptation up and down, the exact top-k resample, truncation), exact_topk_select (ties broken
// by lower index), and DgcMemory::step with a DgcStepState over several steps (the candidate list
// from the second step on), on sizes 1, 7, 4097 and larger with odd tails. Skipped, with a
// message, without a GPU.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gpu_skip.h"
#include "terse/compress/dgc/cuda_dgc_selector.h"
#include "terse/compress/dgc/dgc_memory.h"
#include "terse/compress/dgc/sparse_selection.h"
#include "terse/core/error.h"
#include "terse/core/philox.h"

namespace terse {
namespace {

// A float array in GPU memory, `offset` floats into its allocation (1: misaligned for float4).
struct DeviceFloats {
  float* base = nullptr;
  float* ptr = nullptr;
  size_t n = 0;
  DeviceFloats(const std::vector<float>& host, size_t offset = 0) : n(host.size()) {
    EXPECT_EQ(cudaMalloc(&base, sizeof(float) * (n + offset + 1)), cudaSuccess);
    ptr = base + offset;
    EXPECT_EQ(cudaMemcpy(ptr, host.data(), sizeof(float) * n, cudaMemcpyHostToDevice), cudaSuccess);
  }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;
  ~DeviceFloats() { cudaFree(base); }
  std::vector<float> host() const {
    std::vector<float> h(n);
    EXPECT_EQ(cudaMemcpy(h.data(), ptr, sizeof(float) * n, cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
  }
};

// About N(0, 1), with every 97th element scaled by 8 (heavy tails, as gradients have).
std::vector<float> gaussian(int64_t n, uint64_t seed, float scale = 1.0f) {
  PhiloxStream rng(seed, 11);
  std::vector<float> x(static_cast<size_t>(n));
  for (size_t i = 0; i < x.size(); ++i) {
    float s = 0;
    for (int j = 0; j < 4; ++j) s += rng.uniform();
    x[i] = (s - 2.0f) * 1.7320508f * scale * (i % 97 == 5 ? 8.0f : 1.0f);
  }
  return x;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

void expect_same(const SparseSelection& cpu, const SparseSelection& gpu, const std::string& what) {
  ASSERT_EQ(gpu.indices.size(), cpu.indices.size()) << what;
  EXPECT_EQ(gpu.indices, cpu.indices) << what;
  EXPECT_TRUE(same_bits(gpu.values, cpu.values)) << what;
  EXPECT_EQ(gpu.threshold, cpu.threshold) << what;
  EXPECT_EQ(gpu.rounds, cpu.rounds) << what;
}

const std::vector<int64_t> kSizes = {1, 7, 4097, 65537, 300007, (1 << 20) + 3};

TEST(CudaDgc, SelectMatchesCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  CudaDgcSelector sel(0);
  for (const int64_t n : kSizes) {
    for (const double density : {0.001, 0.01, 0.1}) {
      const std::vector<float> x = gaussian(n, static_cast<uint64_t>(n) * 7 + 1);
      DeviceFloats dx(x);
      const DgcSamplePlan plan = dgc_sample_plan(n, density);
      for (uint64_t step = 0; step < 3; ++step) {
        DgcSelectOptions o;
        o.seed = 42;
        const std::string what = "n " + std::to_string(n) + " density " + std::to_string(density) +
                                 " step " + std::to_string(step);
        expect_same(dgc_select_planned(x.data(), plan, step, o),
                    sel.to_host(sel.select(dx.ptr, plan, step, o)), what);
      }
    }
  }
}

// Inputs that make the sampled threshold wrong on purpose: the large values sit between the
// sampled positions (so the first count is far below k: rounds at x0.8), or most values are equal
// (far above 1.3k: the exact top-k over the candidates, with ties), and the resample off (rounds
// at x1.3), and no rounds allowed (truncation).
TEST(CudaDgc, SelectAdaptsLikeTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  CudaDgcSelector sel(0);
  const int64_t n = (1 << 20) + 17;
  const double density = 0.001;
  const DgcSamplePlan plan = dgc_sample_plan(n, density);
  std::vector<std::vector<float>> inputs;
  std::vector<float> hidden = gaussian(n, 3, 0.01f);
  for (int64_t i = 1; i < n; i += 2 * plan.stride + 1) hidden[static_cast<size_t>(i)] = 5.0f;
  inputs.push_back(hidden);
  std::vector<float> flat(static_cast<size_t>(n), 0.5f);
  for (int64_t i = 0; i < n; i += 1013) flat[static_cast<size_t>(i)] = -0.75f;
  inputs.push_back(flat);
  std::vector<float> steps(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) steps[static_cast<size_t>(i)] = static_cast<float>(i % 64) / 8;
  inputs.push_back(steps);
  int rounds_seen = 0;
  for (size_t c = 0; c < inputs.size(); ++c) {
    DeviceFloats dx(inputs[c]);
    for (const bool resample : {true, false}) {
      for (const int iters : {10, 0, 3}) {
        DgcSelectOptions o;
        o.resample = resample;
        o.max_adaptation_iters = iters;
        const std::string what = "input " + std::to_string(c) + " resample " +
                                 std::to_string(resample) + " iters " + std::to_string(iters);
        const SparseSelection cpu = dgc_select_planned(inputs[c].data(), plan, 5, o);
        rounds_seen += cpu.rounds;
        expect_same(cpu, sel.to_host(sel.select(dx.ptr, plan, 5, o)), what);
      }
    }
  }
  EXPECT_GT(rounds_seen, 0) << "the inputs did not make the threshold adapt";
}

// The large values crowded into the first tiles: at the sampled threshold those tiles hold far
// more hits than their stash slots, so the compaction written before the read-back is
// incomplete and must be dropped for a pass over x (full_scans counts it).
TEST(CudaDgc, SelectWithAnOverflowingTileMatchesCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  CudaDgcSelector sel(0);
  const int64_t n = (1 << 20) + 17;
  for (const double density : {0.01, 0.02}) {
    const DgcSamplePlan plan = dgc_sample_plan(n, density);
    std::vector<float> x = gaussian(n, 9, 0.01f);
    PhiloxStream rng(5, 6);
    for (int64_t i = 0; i < 2 * plan.num_selects; ++i) {
      x[static_cast<size_t>(i)] = 1.0f + rng.uniform();
    }
    DeviceFloats dx(x);
    for (const bool resample : {true, false}) {
      DgcSelectOptions o;
      o.resample = resample;
      const std::string what =
          "density " + std::to_string(density) + " resample " + std::to_string(resample);
      const SparseSelection cpu = dgc_select_planned(x.data(), plan, 2, o);
      expect_same(cpu, sel.to_host(sel.select(dx.ptr, plan, 2, o)), what);
      EXPECT_GE(sel.scans().full_scans, 2) << what << ": no tile overflowed its stash";
    }
  }
}

TEST(CudaDgc, ExactTopKMatchesCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  CudaDgcSelector sel(0);
  for (const int64_t n : kSizes) {
    std::vector<float> x = gaussian(n, 9);
    // Ties: a quarter of the values on a coarse grid, signs mixed.
    for (int64_t i = 0; i < n; i += 4) {
      x[static_cast<size_t>(i)] = static_cast<float>(static_cast<int>(i % 7) - 3) * 0.5f;
    }
    DeviceFloats dx(x);
    for (const int64_t k : {int64_t{1}, (n + 999) / 1000, (n + 9) / 10, n / 2, n}) {
      if (k > n) continue;
      const std::string what = "n " + std::to_string(n) + " k " + std::to_string(k);
      expect_same(exact_topk_select(x.data(), n, k), sel.to_host(sel.exact_topk(dx.ptr, n, k)),
                  what);
    }
  }
  EXPECT_EQ(sel.exact_topk(nullptr, 5, 0).count, 0);
}

// Several DGC steps on the GPU and on the CPU with a DgcStepState: the same selection, U, V and
// provisional threshold after every step; from the second step on the GPU scans its candidate
// list, not V, and finds the sample's threshold by the floor select. Misaligned buffers take the
// scalar path. scales: the gradient's scale at each step (8 steps of 1 by default).
void check_steps(int64_t n, double density, const DgcMemoryOptions& mo, size_t offset,
                 bool expect_list, const std::vector<float>& scales = std::vector<float>(8, 1.0f),
                 int* floor_steps = nullptr) {
  CudaDgcSelector sel(0);
  DgcStepState state;
  std::vector<float> u(static_cast<size_t>(n), 0.0f);
  std::vector<float> v(static_cast<size_t>(n), 0.0f);
  DeviceFloats du(u, offset);
  DeviceFloats dv(v, offset);
  int list_scans = 0;
  int floor_selects = 0;
  for (uint64_t step = 0; step < scales.size(); ++step) {
    std::vector<float> g = gaussian(n, 100 + step, scales[step]);
    DeviceFloats dg(g, offset);
    DgcSelectOptions so;
    so.seed = 7;
    const std::string what = "n " + std::to_string(n) + " nesterov " + std::to_string(mo.nesterov) +
                             " masking " + std::to_string(mo.momentum_masking) + " offset " +
                             std::to_string(offset) + " step " + std::to_string(step);
    const SparseSelection cpu =
        DgcMemory::step(u.data(), v.data(), g.data(), n, density, step, mo, so, &state);
    const SparseSelection gpu =
        sel.to_host(sel.step(du.ptr, dv.ptr, dg.ptr, n, density, step, mo, so));
    expect_same(cpu, gpu, what);
    EXPECT_TRUE(same_bits(du.host(), u)) << what << ": U differs";
    EXPECT_TRUE(same_bits(dv.host(), v)) << what << ": V differs";
    EXPECT_EQ(sel.hint(), state.hint) << what;
    list_scans += sel.scans().list_scans;
    floor_selects += sel.scans().floor_selects;
    EXPECT_EQ(sel.scans().floor_selects + sel.scans().radix_selects >= 1, true) << what;
  }
  if (expect_list) {
    EXPECT_GT(list_scans, 0) << "the candidate list was never used";
    EXPECT_GT(floor_selects, 0) << "the floor select never found the sample's threshold";
  }
  if (floor_steps != nullptr) *floor_steps = floor_selects;
}

TEST(CudaDgc, StepMatchesCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  for (const int64_t n : kSizes) {
    for (const bool nesterov : {false, true}) {
      DgcMemoryOptions mo;
      mo.momentum = 0.9;
      mo.nesterov = nesterov;
      mo.momentum_masking = !nesterov;
      check_steps(n, 0.01, mo, 0, false);
      // At density 0.001 the CPU's list serves from the third or fourth step on (at 0.01 its
      // threshold lags V's growth and the list overflows in the first 8 steps).
      if (n > 100000) check_steps(n, 0.001, mo, 0, true);
    }
  }
  DgcMemoryOptions mo;
  check_steps(300007, 0.001, mo, 1, true);  // misaligned: the scalar path
  check_steps(4099, 0.001, mo, 3, false);
}

// Gradients whose scale jumps: down 16 times (V keeps its unselected residuals, so the
// provisional threshold still lists enough values), then up 16000 times (nearly every sampled
// value lies at or above it: more than the floor select's candidate list holds), and back. The
// radix select takes over on the jump, the floor select on the steady steps, and every step is
// the CPU's.
TEST(CudaDgc, StepWithJumpingGradientsMatchesCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  const std::vector<float> scales = {1, 1, 1, 1.0f / 16, 1.0f / 16, 1000, 1000, 1, 1};
  for (const double density : {0.001, 0.01}) {
    DgcMemoryOptions mo;
    int floor_steps = 0;
    check_steps((1 << 20) + 3, density, mo, 0, false, scales, &floor_steps);
    EXPECT_GT(floor_steps, 0) << "density " << density;
    EXPECT_LT(floor_steps, static_cast<int>(scales.size()) - 1) << "density " << density;
  }
}

// Past 1024 tiles of 4096 elements the compaction finds its offsets from per-group sums (Ctl's
// groups): 9M elements are three groups.
TEST(CudaDgc, LargeTensorsMatchCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  const int64_t n = 9000005;
  CudaDgcSelector sel(0);
  const std::vector<float> x = gaussian(n, 77);
  DeviceFloats dx(x);
  for (const double density : {0.001, 0.01}) {
    const DgcSamplePlan plan = dgc_sample_plan(n, density);
    expect_same(dgc_select_planned(x.data(), plan, 3), sel.to_host(sel.select(dx.ptr, plan, 3)),
                "select at density " + std::to_string(density));
  }
  DgcMemoryOptions mo;
  check_steps(n, 0.001, mo, 0, true);
}

// Clipping sums the norm in another order: the scale may differ in its last bit, so U and V are
// compared within float rounding and the selection (far from ties here) exactly.
TEST(CudaDgc, StepWithClippingMatchesCpuWithinRounding) {
  TERSE_SKIP_WITHOUT_GPU();
  const int64_t n = 300007;
  DgcMemoryOptions mo;
  mo.clip_max_norm = 10.0;
  mo.num_workers = 4;
  CudaDgcSelector sel(0);
  DgcStepState state;
  std::vector<float> u(static_cast<size_t>(n), 0.0f);
  std::vector<float> v(static_cast<size_t>(n), 0.0f);
  DeviceFloats du(u);
  DeviceFloats dv(v);
  for (uint64_t step = 0; step < 3; ++step) {
    std::vector<float> g = gaussian(n, 200 + step);
    DeviceFloats dg(g);
    const SparseSelection cpu =
        DgcMemory::step(u.data(), v.data(), g.data(), n, 0.01, step, mo, {}, &state);
    const SparseSelection gpu = sel.to_host(sel.step(du.ptr, dv.ptr, dg.ptr, n, 0.01, step, mo));
    EXPECT_EQ(gpu.indices, cpu.indices) << "step " << step;
    const std::vector<float> hv = dv.host();
    for (int64_t i = 0; i < n; ++i) {
      const float a = v[static_cast<size_t>(i)];
      ASSERT_NEAR(hv[static_cast<size_t>(i)], a, 1e-6f * std::fabs(a) + 1e-30f) << i;
    }
    // g was clipped in place on both sides: the same scale within its last bit, and it acted.
    const std::vector<float> hg = dg.host();
    const std::vector<float> raw = gaussian(n, 200 + step);
    for (int64_t i = 0; i < n; ++i) {
      const float a = g[static_cast<size_t>(i)];
      ASSERT_NEAR(hg[static_cast<size_t>(i)], a, 1e-6f * std::fabs(a) + 1e-30f) << i;
    }
    EXPECT_LT(std::fabs(g[1]), 0.1f * std::fabs(raw[1])) << "the clip did not act";
  }
}

TEST(CudaDgc, NanIsReportedAsOnTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  CudaDgcSelector sel(0);
  const int64_t n = 100003;
  const DgcSamplePlan plan = dgc_sample_plan(n, 0.01);
  const int64_t start = dgc_sample_start(plan, 0);
  std::vector<float> x = gaussian(n, 1);
  x[static_cast<size_t>(start + 3 * plan.stride)] = std::numeric_limits<float>::quiet_NaN();
  DeviceFloats dx(x);
  EXPECT_THROW(dgc_select_planned(x.data(), plan, 0), NumericalError);
  try {
    sel.select(dx.ptr, plan, 0);
    FAIL() << "no NumericalError";
  } catch (const NumericalError& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(start + 3 * plan.stride)),
              std::string::npos)
        << e.what();
  }
  std::vector<float> y = gaussian(n, 2);
  y[777] = std::numeric_limits<float>::quiet_NaN();
  DeviceFloats dy(y);
  try {
    sel.exact_topk(dy.ptr, n, 10);
    FAIL() << "no NumericalError";
  } catch (const NumericalError& e) {
    EXPECT_NE(std::string(e.what()).find("index 777 "), std::string::npos) << e.what();
  }
  // The selector still works after the errors.
  DeviceFloats dz(gaussian(n, 3));
  EXPECT_EQ(sel.to_host(sel.select(dz.ptr, plan, 0)).indices,
            dgc_select_planned(gaussian(n, 3).data(), plan, 0).indices);
}

TEST(CudaDgc, RejectsBadArguments) {
  TERSE_SKIP_WITHOUT_GPU();
  CudaDgcSelector sel(0);
  DeviceFloats dx(gaussian(10, 1));
  EXPECT_THROW(sel.exact_topk(dx.ptr, 10, 11), InvalidArgument);
  EXPECT_THROW(sel.exact_topk(nullptr, 10, 3), InvalidArgument);
  EXPECT_THROW(sel.select(nullptr, dgc_sample_plan(10, 0.5), 0), InvalidArgument);
  DgcSelectOptions bad;
  bad.upper_bound = 0.5;
  EXPECT_THROW(sel.select(dx.ptr, dgc_sample_plan(10, 0.5), 0, bad), InvalidArgument);
  DgcMemoryOptions mo;
  mo.momentum = 1.0;
  EXPECT_THROW(sel.step(dx.ptr, dx.ptr, dx.ptr, 10, 0.5, 0, mo), InvalidArgument);
  EXPECT_THROW(CudaDgcSelector(1 << 20), InvalidArgument);
  EXPECT_THROW(CudaDgcSelector(0, 0.5), InvalidArgument);
}

}  // namespace
}  // namespace terse

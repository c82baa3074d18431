// DGC on the GPU (CudaDgcSelector) at the DGC paper's scale: the sampled-threshold selection and
// the exact top-k of |x| over --n floats (default 25.6M, ResNet-50's gradient) at --density,
// DgcMemory::step's fused pass (momentum correction, candidate list, selection, masking; 20 bytes
// per element), and, as the references timed in the same run, the SGD-momentum optimizer step of
// the same n (cuda_multi_tensor_apply, 20 bytes per element) and a device-to-device copy.
// torch.topk of the same input: scripts/torch_topk_cuda_bench.py, in the same device call.
//   cuda_dgc_bench [--n 25600000] [--density 0.001] [--reps 20] [--json FILE]
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cuda_timing.h"
#include "terse/compress/dgc/cuda_dgc_selector.h"
#include "terse/core/philox.h"
#include "terse/kernels/cuda_info.h"
#include "terse/kernels/cuda_multi_tensor.h"

namespace {

using namespace terse;
using bench::cuda_ok;

float* device_copy(const std::vector<float>& h) {
  float* p = nullptr;
  cuda_ok(cudaMalloc(&p, h.size() * sizeof(float)), "cudaMalloc");
  cuda_ok(cudaMemcpy(p, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice), "upload");
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t n = 25600000;
  double density = 0.001;
  int reps = 20;
  std::string json;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--n") {
      n = std::stoll(v);
    } else if (a == "--density") {
      density = std::stod(v);
    } else if (a == "--reps") {
      reps = std::stoi(v);
    } else if (a == "--json") {
      json = v;
    } else {
      std::fprintf(stderr, "cuda_dgc_bench: unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  const CudaInfo info = CudaInfo::query();
  if (info.devices.empty()) {
    std::fprintf(stderr, "cuda_dgc_bench: %s\n", info.status.c_str());
    return 1;
  }
  // A gradient-like input: about N(0, 1e-3) from Philox (sum of 4 uniforms).
  std::vector<float> h(static_cast<size_t>(n));
  PhiloxStream rng(1, 2);
  for (auto& x : h) {
    float s = 0;
    for (int j = 0; j < 4; ++j) s += rng.uniform();
    x = (s - 2.0f) * 1.7320508e-3f;
  }
  float* x = device_copy(h);
  float* g = device_copy(h);
  std::vector<float> zeros(h.size(), 0.0f);
  float* u = device_copy(zeros);
  float* v = device_copy(zeros);
  float* p = device_copy(zeros);
  float* m = device_copy(zeros);
  const size_t bytes = h.size() * sizeof(float);
  float* dst = nullptr;
  cuda_ok(cudaMalloc(&dst, bytes), "cudaMalloc");
  const double copy_ms = bench::wall_median_ms(
      reps, [&] { cuda_ok(cudaMemcpyAsync(dst, x, bytes, cudaMemcpyDeviceToDevice), "copy"); });
  const double copy_gbps = 2.0 * static_cast<double>(bytes) / (copy_ms * 1e6);

  CudaDgcSelector sel(0);
  const DgcSamplePlan plan = dgc_sample_plan(n, density);
  uint64_t step = 0;
  int64_t count = 0;
  const double select_ms =
      bench::wall_median_ms(reps, [&] { count = sel.select(x, plan, step++).count; });
  // The same calls timed with CUDA events, as scripts/torch_topk_cuda_bench.py times torch.topk:
  // the GPU's timeline from before the first launch to after the last work (the read-back inside
  // select() included), without the host's final wake-up.
  const double select_events_ms =
      bench::cuda_median_ms(reps, [&] { count = sel.select(x, plan, step++).count; });
  const int64_t k = plan.num_selects;
  const double topk_ms = bench::wall_median_ms(reps, [&] { sel.exact_topk(x, n, k); });
  // Steps alternate between two gradients, after 48 untimed ones: V grows while its elements wait
  // to be selected, and the provisional threshold of the step before lags it most in the first
  // steps (when the stash misses the threshold, the step reads V once more).
  std::vector<float> h2(h.rbegin(), h.rend());
  float* g2 = device_copy(h2);
  DgcMemoryOptions mo;
  int list_steps = 0;
  int floor_steps = 0;  // the sample's threshold by the floor select, not the radix select
  int steps = 0;
  auto dgc_step = [&] {
    sel.step(u, v, (step % 2) != 0 ? g2 : g, n, density, step, mo);
    ++step;
    list_steps += sel.scans().full_scans == 0 ? 1 : 0;
    floor_steps += sel.scans().floor_selects;
    ++steps;
  };
  for (int i = 0; i < 48; ++i) dgc_step();
  list_steps = floor_steps = steps = 0;
  const double step_ms = bench::wall_median_ms(reps, dgc_step);
  std::vector<CudaTensorTask<SgdRule<true>>> tasks(1);
  tasks[0].rule = SgdRule<true>::for_step(0.1, 0.9, 0.0, 0.0, false, false, 2);
  tasks[0].param = TensorView(p, n, DType::kF32, Device::cuda(0));
  tasks[0].grad = TensorView(g, n, DType::kF32, Device::cuda(0));
  tasks[0].states[0] = m;
  const double sgd_ms = bench::wall_median_ms(reps, [&] { cuda_multi_tensor_apply(tasks); });

  const double traffic = 20.0 * static_cast<double>(n);  // U, V (or p, m) read+write, g read
  std::printf("%s; n %lld, density %g (k %lld); copy %.3f ms = %.0f GB/s\n",
              info.devices[0].name.c_str(), static_cast<long long>(n), density,
              static_cast<long long>(k), copy_ms, copy_gbps);
  std::printf("sampled selection   %8.3f ms (%lld selected); CUDA events %.3f ms\n", select_ms,
              static_cast<long long>(count), select_events_ms);
  std::printf("exact top-k         %8.3f ms\n", topk_ms);
  std::printf(
      "fused DGC step      %8.3f ms = %.0f GB/s (%d of %d steps without a pass over V, %d by "
      "the floor select)\n",
      step_ms, traffic / (step_ms * 1e6), list_steps, steps, floor_steps);
  std::printf("SGD-momentum step   %8.3f ms = %.0f GB/s; DGC step / SGD step = %.2f\n", sgd_ms,
              traffic / (sgd_ms * 1e6), step_ms / sgd_ms);
  if (!json.empty()) {
    const nlohmann::json out = {{"benchmark", "cuda_dgc"},
                                {"device", info.devices[0].name},
                                {"n", n},
                                {"density", density},
                                {"k", k},
                                {"reps", reps},
                                {"copy_ms", copy_ms},
                                {"copy_gbps", copy_gbps},
                                {"select_ms", select_ms},
                                {"select_events_ms", select_events_ms},
                                {"selected", count},
                                {"exact_topk_ms", topk_ms},
                                {"dgc_step_ms", step_ms},
                                {"dgc_steps_timed", steps},
                                {"dgc_steps_without_a_pass_over_v", list_steps},
                                {"dgc_steps_by_the_floor_select", floor_steps},
                                {"sgd_momentum_step_ms", sgd_ms},
                                {"step_over_sgd", step_ms / sgd_ms}};
    std::ofstream(json) << out.dump(2) << "\n";
  }
  for (float* b : {x, g, g2, u, v, p, m, dst}) cudaFree(b);
  return 0;
}

// CUDA optimizer step: cuda_multi_tensor_apply for a Rule over `--params` elements cut into
// `--tensors` tensors, in GB/s of the step's traffic against cudaMemcpy device to device of
// 4 bytes per param (read + write counted), timed in the same rounds. Params and grads are in
// `--dtype` (f32, bf16 or f16: e = 4 or 2 bytes an element), states f32 as the optimizers keep
// them (StateBuffer), so a one-pass Rule moves 3e + 8 x states bytes per param (param read and
// written, grad read, each state read and written: 12 + 8 x states in f32). The 8-bit rows
// (adam8bit, momentum8bit, lion8bit) time cuda_eightbit_step on 8-bit states: 3e bytes of param
// and grad, and per state its code read and written plus 8 bytes of absmax per 256 params (f32:
// Adam 16.06 B/param, one state 14.03).
// adamp and sgdp run cuda_projected_apply over the tensors as rows of 1024 (one row where 1024
// does not divide a tensor): a row-sum pass, the view choice (on the GPU), then the update, so
// their traffic is 5e + 12 x states bytes per param (p, g read twice, states read twice and
// written once, p written; the row sums, 32 bytes per row, are not counted); the others are one
// pass.
//   cuda_optim_bench [--params 268435456] [--tensors 256] [--reps 20] [--rounds 5]
//                    [--dtype f32|bf16|f16] [--rules adamw,sgd,lion,adan,...,adam8bit]
//                    [--json FILE]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cuda_timing.h"
#include "terse/core/dispatch.h"
#include "terse/core/dtype.h"
#include "terse/kernels/blockwise_quant.h"
#include "terse/kernels/cuda_eightbit_step.h"
#include "terse/kernels/cuda_info.h"
#include "terse/kernels/cuda_multi_tensor.h"
#include "terse/kernels/cuda_projected.h"
#include "terse/kernels/dynamic_map.h"

namespace {

using namespace terse;
using bench::cuda_median_ms;
using bench::cuda_ok;
using bench::split_list;

// Params and grads in `dtype`, states f32.
struct Buffers {
  DType dtype = DType::kF32;
  std::vector<void*> p, g;
  std::vector<float*> s[4];
  std::vector<int64_t> n;
};

// Each maker returns one step over the buffers, for the rounds below to time.
using Step = std::function<void()>;

template <typename Rule>
Step run_rule(const Rule& rule, Buffers& b) {
  std::vector<CudaTensorTask<Rule>> tasks(b.n.size());
  for (size_t i = 0; i < b.n.size(); ++i) {
    tasks[i].rule = rule;
    tasks[i].param = TensorView(b.p[i], b.n[i], b.dtype, Device::cuda(0));
    tasks[i].grad = TensorView(b.g[i], b.n[i], b.dtype, Device::cuda(0));
    for (int k = 0; k < Rule::kNumStates; ++k) tasks[i].states[k] = b.s[k][i];
  }
  return [tasks] { cuda_multi_tensor_apply(tasks); };
}

// One AdamP / SGDP step (cuda_projected_apply) over the tensors as rows of 1024 elements.
template <typename Rule>
Step run_projected(const Rule& rule, Buffers& b) {
  std::vector<CudaProjectedTask<Rule>> tasks(b.n.size());
  for (size_t i = 0; i < b.n.size(); ++i) {
    tasks[i].rule = rule;
    tasks[i].param = TensorView(b.p[i], b.n[i], b.dtype, Device::cuda(0));
    tasks[i].grad = TensorView(b.g[i], b.n[i], b.dtype, Device::cuda(0));
    for (int k = 0; k < Rule::kNumStates; ++k) tasks[i].states[k] = b.s[k][i];
    tasks[i].rows = b.n[i] % 1024 == 0 ? b.n[i] / 1024 : 1;
  }
  return [tasks] { cuda_projected_apply(tasks); };
}

// The 8-bit states of the tensors of Buffers: codes and absmax per state, made on first use.
struct QuantBuffers {
  std::vector<uint8_t*> codes[2];
  std::vector<float*> absmax[2];
  CudaQuantMaps maps{};
};

CudaQuantMap cuda_map(const DynamicMap& m) {
  CudaQuantMap c{};
  for (int k = 0; k < DynamicMap::kCodes; ++k) {
    c.code[k] = m.codes()[k];
    c.tree[k] = m.search_tree()[k];
  }
  c.is_signed = m.is_signed() ? 1 : 0;
  c.zero_code = m.zero_code();
  return c;
}

void make_quant(const Buffers& b, QuantBuffers& q) {
  if (!q.codes[0].empty()) return;
  q.maps.state[0] = cuda_map(DynamicMap::signed_map());
  q.maps.state[1] = cuda_map(DynamicMap::unsigned_map());
  for (int k = 0; k < 2; ++k) {
    for (int64_t n : b.n) {
      // Codes in the middle of each map and absmax 0.01: the step does its full work.
      uint8_t* c = nullptr;
      cuda_ok(cudaMalloc(&c, static_cast<size_t>(n)), "cudaMalloc");
      cuda_ok(cudaMemset(c, k == 0 ? 200 : 100, static_cast<size_t>(n)), "memset");
      const auto blocks = static_cast<size_t>(quant_num_blocks(n));
      std::vector<float> h(blocks, 0.01f);
      float* a = nullptr;
      cuda_ok(cudaMalloc(&a, blocks * sizeof(float)), "cudaMalloc");
      cuda_ok(cudaMemcpy(a, h.data(), blocks * sizeof(float), cudaMemcpyHostToDevice), "fill");
      q.codes[k].push_back(c);
      q.absmax[k].push_back(a);
    }
  }
}

template <bool kSkip, typename Rule>
Step run_eightbit(const Rule& rule, Buffers& b, QuantBuffers& q) {
  make_quant(b, q);
  std::vector<CudaEightBitTask<Rule>> tasks(b.n.size());
  for (size_t i = 0; i < b.n.size(); ++i) {
    tasks[i].rule = rule;
    tasks[i].param = TensorView(b.p[i], b.n[i], b.dtype, Device::cuda(0));
    tasks[i].grad = TensorView(b.g[i], b.n[i], b.dtype, Device::cuda(0));
    tasks[i].eight_bit = true;
    for (int k = 0; k < Rule::kNumStates; ++k) {
      tasks[i].codes[k] = q.codes[k][i];
      tasks[i].absmax[k] = q.absmax[k][i];
    }
  }
  const CudaQuantMaps maps = q.maps;
  return [tasks, maps] { cuda_eightbit_step<Rule, kSkip>(tasks, maps); };
}

// Param and grad read, param written (e bytes each), and per 8-bit state its code read and
// written and its block's absmax read and written (8 bytes per kQuantBlockSize params).
double eightbit_bytes_per_param(double e, int states) {
  return 3.0 * e + states * (2.0 + 8.0 / static_cast<double>(kQuantBlockSize));
}

// n elements of `dtype` on the GPU, each v rounded to the dtype.
void* alloc_filled(int64_t n, DType dtype, float v) {
  const size_t esize = dtype_size(dtype);
  void* p = nullptr;
  cuda_ok(cudaMalloc(&p, static_cast<size_t>(n) * esize), "cudaMalloc");
  const int64_t chunk = std::min<int64_t>(n, 1 << 20);
  std::vector<unsigned char> h(static_cast<size_t>(chunk) * esize);
  dispatch_floating(dtype, [&](auto tag) {
    auto* t = reinterpret_cast<decltype(tag)*>(h.data());
    for (int64_t i = 0; i < chunk; ++i) store_from_float(t, i, v);
  });
  for (int64_t o = 0; o < n; o += chunk) {
    const int64_t c = std::min<int64_t>(n - o, chunk);
    cuda_ok(cudaMemcpy(static_cast<unsigned char*>(p) + static_cast<size_t>(o) * esize, h.data(),
                       static_cast<size_t>(c) * esize, cudaMemcpyHostToDevice),
            "fill");
  }
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t params = int64_t{1} << 28;
  int tensors = 256, reps = 20, rounds = 5;
  std::string rules =
      "sgd,sgdm,adamw,lion,adan,adabelief,diffgrad,exadam,spam,sgd_sai,adamp,sgdp,adam8bit,"
      "momentum8bit,lion8bit";
  std::string json, dtype_arg = "f32";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--params")
      params = std::stoll(v);
    else if (a == "--tensors")
      tensors = std::stoi(v);
    else if (a == "--reps")
      reps = std::stoi(v);
    else if (a == "--rounds")
      rounds = std::stoi(v);
    else if (a == "--rules")
      rules = v;
    else if (a == "--json")
      json = v;
    else if (a == "--dtype")
      dtype_arg = v;
    else {
      std::fprintf(stderr, "cuda_optim_bench: unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  if (reps < 1 || rounds < 1 || tensors < 1 || params < tensors) {
    std::fprintf(stderr,
                 "cuda_optim_bench: --reps and --rounds must be >= 1 and --params >= --tensors "
                 ">= 1, got %d, %d, %lld, %d\n",
                 reps, rounds, static_cast<long long>(params), tensors);
    return 2;
  }
  // The dtypes the executors take for params and grads (states stay f32).
  DType dtype = DType::kF32;
  if (dtype_arg == "bf16") {
    dtype = DType::kBF16;
  } else if (dtype_arg == "f16") {
    dtype = DType::kF16;
  } else if (dtype_arg != "f32") {
    std::fprintf(stderr, "cuda_optim_bench: unknown --dtype %s; use f32, bf16 or f16\n",
                 dtype_arg.c_str());
    return 2;
  }
  const double e = static_cast<double>(dtype_size(dtype));  // bytes of a param or grad element
  const CudaInfo info = CudaInfo::query();
  if (info.devices.empty()) {
    std::fprintf(stderr, "cuda_optim_bench: %s\n", info.status.c_str());
    return 1;
  }
  // Tensors of equal size (the last takes the remainder).
  Buffers b;
  b.dtype = dtype;
  const int64_t each = params / tensors;
  for (int i = 0; i < tensors; ++i) b.n.push_back(i + 1 < tensors ? each : params - each * i);
  for (int64_t n : b.n) {
    b.p.push_back(alloc_filled(n, dtype, 0.5f));
    b.g.push_back(alloc_filled(n, dtype, 0.01f));
    for (int k = 0; k < 4; ++k) {
      b.s[k].push_back(static_cast<float*>(alloc_filled(n, DType::kF32, 0.001f)));
    }
  }
  // Copy bandwidth: one buffer of 4 * params bytes copied device to device (read + write),
  // whatever --dtype is: the reference is the device's bandwidth, the rows' bytes are their own.
  float *src = nullptr, *dst = nullptr;
  const size_t bytes = static_cast<size_t>(params) * sizeof(float);
  cuda_ok(cudaMalloc(&src, bytes), "cudaMalloc");
  cuda_ok(cudaMalloc(&dst, bytes), "cudaMalloc");
  const Step copy = [=] {
    cuda_ok(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice), "copy");
  };
  QuantBuffers quant;
  struct Op {
    std::string rule;
    double bpp;
    Step step;
    std::vector<double> ms, ratio;  // per round: the step's median, and copy's over it
  };
  std::vector<Op> ops;
  for (const std::string& r : split_list(rules)) {
    Step ms;
    int states = 0;
    double bpp = 0;  // the 8-bit rows set it
    if (r == "sgd") {
      ms = run_rule(SgdRule<false>::for_step(0.1, 0, 0, 0, false, false, 1), b);
    } else if (r == "sgdm") {
      ms = run_rule(SgdRule<true>::for_step(0.1, 0.9, 0, 0, false, false, 2), b);
      states = 1;
    } else if (r == "adamw") {
      ms = run_rule(AdamRule<false>::for_step(1e-3, 0.9, 0.999, 1e-8, 0.01, true, false, 2), b);
      states = 2;
    } else if (r == "lion") {
      ms = run_rule(LionRule::for_step(1e-4, 0.9, 0.99, 0.1, 2), b);
      states = 1;
    } else if (r == "adan") {
      ms = run_rule(AdanRule::for_step(1e-3, 0.98, 0.92, 0.99, 1e-8, 0.02, false, 0, 2), b);
      states = 4;  // m, v, n and the previous gradient
    } else if (r == "adabelief") {
      ms = run_rule(
          AdaBeliefRule<false>::for_step(1e-3, 0.9, 0.999, 1e-16, 0, true, false, true, true, 2),
          b);
      states = 2;
    } else if (r == "diffgrad") {
      ms = run_rule(DiffGradRule::for_step(1e-3, 0.9, 0.999, 1e-8, 0, 2), b);
      states = 3;
    } else if (r == "exadam") {
      ms = run_rule(ExAdamRule::for_step(1e-3, 0.9, 0.999, 1e-8, 0, 2), b);
      states = 2;
    } else if (r == "spam") {
      ms =
          run_rule(SpamRule::for_step(1e-3, 0.9, 0.999, 1e-6, 0, true, 5000, 1, false, true, 2), b);
      states = 2;
    } else if (r == "sgd_sai") {
      ms = run_rule(SgdSaiRule<true>::for_step(1e-2, 0.9, 0.01, 2).for_tensor(2.0f), b);
      states = 1;
    } else if (r == "adamp") {
      ms = run_projected(AdamPRule<false>::for_step(1e-3, 0.9, 0.999, 1e-8, 0.01, 0.1, 0.1, 2), b);
      states = 2;
      // A second pass re-reads p, g and the states.
      bpp = (3.0 * e + 8.0 * states) + (2.0 * e + 4.0 * states);
    } else if (r == "sgdp") {
      ms = run_projected(SgdPRule<false>::for_step(0.1, 0.9, 0, 1e-4, 0.1, 0.1, 1e-8, 2), b);
      states = 1;
      bpp = (3.0 * e + 8.0 * states) + (2.0 * e + 4.0 * states);
    } else if (r == "adam8bit") {
      ms = run_eightbit<true>(BnbAdamRule::for_step(1e-3, 0.9, 0.999, 1e-8, 0.01, 2), b, quant);
      bpp = eightbit_bytes_per_param(e, 2);
    } else if (r == "momentum8bit") {
      ms = run_eightbit<false>(SgdRule<true>::for_step(0.1, 0.9, 0, 0, false, false, 2), b, quant);
      bpp = eightbit_bytes_per_param(e, 1);
    } else if (r == "lion8bit") {
      ms = run_eightbit<false>(LionRule::for_step(1e-4, 0.9, 0.99, 0.1, 2), b, quant);
      bpp = eightbit_bytes_per_param(e, 1);
    } else {
      std::fprintf(stderr, "cuda_optim_bench: unknown rule %s\n", r.c_str());
      return 2;
    }
    // p read + written, g read (e bytes each), each f32 state read + written.
    if (bpp == 0) bpp = 3.0 * e + 8.0 * states;
    ops.push_back({r, bpp, std::move(ms), {}, {}});
  }
  // Rounds: each times the copy and then every step (a median of `reps` calls each), so a drift
  // of the device (clocks, temperature, a neighbour) between calls weighs on the reference and
  // the steps alike; a step's ratio is taken against the copy of its own round.
  std::vector<double> copy_ms;
  for (int round = 0; round < rounds; ++round) {
    const double c = cuda_median_ms(reps, copy);
    copy_ms.push_back(c);
    for (Op& op : ops) {
      const double t = cuda_median_ms(reps, op.step);
      op.ms.push_back(t);
      op.ratio.push_back(c / t);
    }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double copy_med = median(copy_ms);
  const double copy_gbps = 2.0 * static_cast<double>(bytes) / (copy_med * 1e6);
  std::printf(
      "%s, %.1f GiB; %lld %s params in %d tensors (f32 states); copy of 4 B/param %.2f ms = "
      "%.0f GB/s (read + write)\n",
      info.devices[0].name.c_str(), info.devices[0].total_memory_bytes / 1073741824.0,
      static_cast<long long>(params), dtype_name(dtype), tensors, copy_med, copy_gbps);
  std::printf("%d rounds of %d calls; %% copy: the median over rounds (lowest round)\n", rounds,
              reps);
  std::printf("%-12s %8s %10s %8s %8s %8s\n", "rule", "B/param", "step ms", "GB/s", "% copy",
              "lowest");
  nlohmann::json out = {{"benchmark", "cuda_optim"},
                        {"device", info.devices[0].name},
                        {"params", params},
                        {"tensors", tensors},
                        {"dtype", dtype_name(dtype)},
                        {"reps", reps},
                        {"rounds", rounds},
                        {"copy_ms", copy_med},
                        {"copy_gbps", copy_gbps},
                        {"copy_ms_by_round", copy_ms},
                        {"rows", nlohmann::json::array()}};
  for (const Op& op : ops) {
    // Bytes over time against the copy's bytes over time: bpp / 8 bytes per param of the copy.
    const double ms = median(op.ms);
    const double gbps = op.bpp * static_cast<double>(params) / (ms * 1e6);
    auto pct = [&](double ratio) { return 100.0 * ratio * op.bpp / 8.0; };
    const double pct_med = pct(median(op.ratio));
    const double pct_low = pct(*std::min_element(op.ratio.begin(), op.ratio.end()));
    std::printf("%-12s %8.0f %10.3f %8.0f %7.1f%% %7.1f%%\n", op.rule.c_str(), op.bpp, ms, gbps,
                pct_med, pct_low);
    out["rows"].push_back({{"rule", op.rule},
                           {"bytes_per_param", op.bpp},
                           {"ms", ms},
                           {"gbps", gbps},
                           {"pct_copy", pct_med},
                           {"pct_copy_lowest_round", pct_low},
                           {"ms_by_round", op.ms}});
  }
  if (!json.empty()) std::ofstream(json) << out.dump(1) << "\n";
  return 0;
}

// CPU optimizer step: terse's fused multi-tensor kernels against the machine's copy bandwidth
// and against torch::optim (same sizes, same process). Bytes per parameter per step follow the
// spec (optimizers.md §19): SGD-M 20, Adam/AdamW 28.
//
//   optim_bench [--sizes 1M,4M,16M,64M] [--threads 1,2] [--reps 7] [--dtype f32|bf16|f16]
//               [--json FILE] [--no-torch]
// With 16-bit params and grads the bytes per parameter are 3 * 2 + 8 (SGD-M) and 3 * 2 + 16
// (Adam): param and grad read, param written, f32 states read and written.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "terse/core/philox.h"
#include "terse/kernels/cpu_threads.h"
#include "terse/optim/optimizer.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef TERSE_BENCH_TORCH
#include <torch/torch.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::vector<int64_t> sizes = {int64_t{1} << 20, int64_t{4} << 20, int64_t{16} << 20,
                                int64_t{64} << 20};
  std::vector<int> threads = {1, 2};
  int reps = 7;
  std::string json;
  bool torch = true;
  terse::DType dtype = terse::DType::kF32;
};

int64_t parse_size(const std::string& s) {
  const char last = s.empty() ? '\0' : s.back();
  const int64_t mult = last == 'M' ? (int64_t{1} << 20) : last == 'K' ? 1024 : 1;
  return std::stoll(mult == 1 ? s : s.substr(0, s.size() - 1)) * mult;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    const auto c = s.find(',', pos);
    out.push_back(s.substr(pos, c == std::string::npos ? std::string::npos : c - pos));
    if (c == std::string::npos) break;
    pos = c + 1;
  }
  return out;
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "optim_bench: %s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--sizes") {
      a.sizes.clear();
      for (const auto& s : split(value())) a.sizes.push_back(parse_size(s));
    } else if (k == "--threads") {
      a.threads.clear();
      for (const auto& s : split(value())) a.threads.push_back(std::stoi(s));
    } else if (k == "--reps") {
      a.reps = std::stoi(value());
    } else if (k == "--json") {
      a.json = value();
    } else if (k == "--dtype") {
      a.dtype = terse::dtype_from_name(value());
    } else if (k == "--no-torch") {
      a.torch = false;
    } else {
      std::fprintf(stderr,
                   "usage: optim_bench [--sizes 1M,4M,16M,64M] [--threads 1,2] [--reps 7] "
                   "[--dtype f32|bf16|f16] [--json FILE] [--no-torch]\n(unknown argument '%s')\n",
                   k.c_str());
      std::exit(2);
    }
  }
  return a;
}

struct Timing {
  double best = 0, median = 0;  // seconds
};

// Best and median of `reps` calls after one warm-up call. Tables use the best: on a shared
// machine other users' work only ever adds time.
Timing time_calls(int reps, const std::function<void()>& fn) {
  fn();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto start = Clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::sort(t.begin(), t.end());
  return {t.front(), t[t.size() / 2]};
}

// Copy bandwidth with `threads` threads over 2 x 512 MiB, counting read + write bytes: glibc
// memcpy (non-temporal stores at this size) and a plain loop (ordinary stores, as the kernels).
struct CopyBandwidth {
  double memcpy_gbps = 0, loop_gbps = 0;
};

// A vectorised stream copy built like the kernels (omp simd, run-time ISA dispatch); + 0.0f keeps
// GCC from turning it into a memcpy call.
__attribute__((target_clones("avx512f", "avx2", "default"))) void copy_range(
    float* __restrict d, const float* __restrict s, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) d[i] = s[i] + 0.0f;
}

CopyBandwidth measure_copy(int threads, int reps) {
  const int64_t n = int64_t{128} << 20;  // floats
  std::vector<float> src(static_cast<size_t>(n), 1.0f), dst(static_cast<size_t>(n), 0.0f);
  const int64_t chunk = int64_t{1} << 20;
  const int64_t chunks = n / chunk;
  (void)threads;  // used only by the OpenMP pragmas
  const double bytes = 2.0 * static_cast<double>(n) * sizeof(float);
  CopyBandwidth bw;
  const auto copy_memcpy = [&] {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t c = 0; c < chunks; ++c) {
      std::memcpy(dst.data() + c * chunk, src.data() + c * chunk, chunk * sizeof(float));
    }
  };
  const auto copy_loop = [&] {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t c = 0; c < chunks; ++c) {
      copy_range(dst.data() + c * chunk, src.data() + c * chunk, chunk);
    }
  };
  bw.memcpy_gbps = bytes / time_calls(reps, copy_memcpy).best / 1e9;
  bw.loop_gbps = bytes / time_calls(reps, copy_loop).best / 1e9;
  return bw;
}

// A handful of tensors summing to `total`: 40%, 30%, 15%, 10%, 5%.
std::vector<int64_t> tensor_sizes(int64_t total) {
  const int64_t a = total * 40 / 100, b = total * 30 / 100, c = total * 15 / 100,
                d = total * 10 / 100;
  return {a, b, c, d, total - a - b - c - d};
}

struct Optim {
  const char* label;
  const char* terse_spec;
  int num_states;
  // Spec §19: param and grad read, param written, f32 states read and written.
  double bytes_per_param(terse::DType dtype) const {
    return 3.0 * static_cast<double>(terse::dtype_size(dtype)) + 8.0 * num_states;
  }
};

const Optim kOptims[] = {{"SGD-M", "sgd:lr=0.01,momentum=0.9", 1},
                         {"Adam", "adam:lr=0.001", 2},
                         {"AdamW", "adamw:lr=0.001,weight_decay=0.01", 2}};

template <typename T>
Timing time_terse(const Optim& o, int64_t total, int reps) {
  std::vector<std::vector<T>> values, grads;
  std::vector<terse::Param> params;
  terse::PhiloxStream rng(1, 0);
  for (int64_t n : tensor_sizes(total)) {
    values.emplace_back(static_cast<size_t>(n));
    grads.emplace_back(static_cast<size_t>(n));
    for (int64_t e = 0; e < n; ++e) {
      terse::store_from_float(values.back().data(), e, rng.uniform() - 0.5f);
      terse::store_from_float(grads.back().data(), e, rng.uniform() * 1e-3f);
    }
  }
  for (size_t i = 0; i < values.size(); ++i) {
    const auto n = static_cast<int64_t>(values[i].size());
    params.push_back(terse::Param{terse::TensorView::of(values[i].data(), n),
                                  terse::TensorView::of(grads[i].data(), n),
                                  {n},
                                  "t" + std::to_string(i)});
  }
  auto opt = terse::make_optimizer(o.terse_spec, params);
  return time_calls(reps, [&] { opt->step(); });
}

#ifdef TERSE_BENCH_TORCH
Timing time_torch(const Optim& o, int64_t total, int reps, terse::DType dtype) {
  torch::manual_seed(1);
  const auto type = dtype == terse::DType::kBF16  ? torch::kBFloat16
                    : dtype == terse::DType::kF16 ? torch::kHalf
                                                  : torch::kFloat;
  std::vector<torch::Tensor> params;
  for (int64_t n : tensor_sizes(total)) {
    auto p = (torch::rand({n}) - 0.5).to(type);
    p.set_requires_grad(true);
    p.mutable_grad() = (torch::rand({n}) * 1e-3).to(type);
    params.push_back(p);
  }
  std::unique_ptr<torch::optim::Optimizer> opt;
  const std::string label = o.label;
  if (label == "SGD-M") {
    opt = std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(0.01).momentum(0.9));
  } else if (label == "Adam") {
    opt = std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(0.001));
  } else {
    opt = std::make_unique<torch::optim::AdamW>(
        params, torch::optim::AdamWOptions(0.001).weight_decay(0.01));
  }
  torch::NoGradGuard no_grad;
  return time_calls(reps, [&] { opt->step(); });
}
#endif

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  bool with_torch = args.torch;
#ifndef TERSE_BENCH_TORCH
  with_torch = false;
#endif
  nlohmann::json out;
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M", std::localtime(&now));
  out["date"] = date;
  out["cpu"] = cpu_model();
  out["reps"] = args.reps;
  out["bytes_per_param"] = {{"SGD-M", kOptims[0].bytes_per_param(args.dtype)},
                            {"Adam", kOptims[1].bytes_per_param(args.dtype)},
                            {"AdamW", kOptims[2].bytes_per_param(args.dtype)}};
  out["results"] = nlohmann::json::array();
  out["dtype"] = terse::dtype_name(args.dtype);
  std::printf("CPU optimizer step, %s params, %s, %s, best of %d steps\n",
              terse::dtype_name(args.dtype), cpu_model().c_str(), date, args.reps);
  for (int t : args.threads) {
    terse::set_cpu_threads(t);
#ifdef TERSE_BENCH_TORCH
    torch::set_num_threads(t);
#endif
    const CopyBandwidth bw = measure_copy(t, args.reps);
    const double copy = std::max(bw.memcpy_gbps, bw.loop_gbps);
    out["copy_gbps"][std::to_string(t)] = {{"memcpy", bw.memcpy_gbps}, {"loop", bw.loop_gbps}};
    std::printf("\nthreads=%d  copy bandwidth (read+write): memcpy %.1f GB/s, loop %.1f GB/s\n", t,
                bw.memcpy_gbps, bw.loop_gbps);
    std::printf("%-6s %9s %11s %9s %8s %11s %8s\n", "optim", "params", "terse ms", "GB/s", "% copy",
                "torch ms", "speedup");
    for (const Optim& o : kOptims) {
      for (int64_t n : args.sizes) {
        const Timing tt =
            args.dtype == terse::DType::kBF16  ? time_terse<terse::BFloat16>(o, n, args.reps)
            : args.dtype == terse::DType::kF16 ? time_terse<terse::Half>(o, n, args.reps)
                                               : time_terse<float>(o, n, args.reps);
        const double ts = tt.best;
        const double gbps = o.bytes_per_param(args.dtype) * static_cast<double>(n) / ts / 1e9;
        Timing torch_t;
#ifdef TERSE_BENCH_TORCH
        if (with_torch) torch_t = time_torch(o, n, args.reps, args.dtype);
#endif
        const double torch_s = torch_t.best;
        nlohmann::json row = {{"optimizer", o.label},
                              {"params", n},
                              {"threads", t},
                              {"terse_ms", ts * 1e3},
                              {"terse_median_ms", tt.median * 1e3},
                              {"gbps", gbps},
                              {"pct_copy", 100 * gbps / copy}};
        if (with_torch) {
          row["torch_ms"] = torch_s * 1e3;
          row["torch_median_ms"] = torch_t.median * 1e3;
          row["speedup_vs_torch"] = torch_s / ts;
          std::printf("%-6s %8.0fM %11.2f %9.1f %7.0f%% %11.2f %7.2fx\n", o.label,
                      static_cast<double>(n) / (1 << 20), ts * 1e3, gbps, 100 * gbps / copy,
                      torch_s * 1e3, torch_s / ts);
        } else {
          std::printf("%-6s %8.0fM %11.2f %9.1f %7.0f%% %11s %8s\n", o.label,
                      static_cast<double>(n) / (1 << 20), ts * 1e3, gbps, 100 * gbps / copy, "-",
                      "-");
        }
        std::fflush(stdout);
        out["results"].push_back(row);
      }
    }
  }
  if (!args.json.empty()) {
    std::ofstream f(args.json);
    f << out.dump(2) << "\n";
  }
  return 0;
}

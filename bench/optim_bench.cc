// CPU optimizer step: terse's fused multi-tensor kernels against a roofline reference of the same
// access pattern and against torch::optim (same sizes, same threads, same process). Bytes per
// parameter per step follow the spec (optimizers.md §19): SGD-M 20, Adam/AdamW 28.
//
// The roofline reference is a "traffic twin" per optimizer: a kernel that reads and writes exactly
// the optimizer's streams in place (SGD-M: read p, g, b, write p, b; Adam/AdamW: read p, g, m, v,
// write p, m, v) with one add per stream, built like the real kernels (same tensors, same 65536-
// element chunks taken dynamically by the same OpenMP threads, `omp simd`, target_clones). Its time
// is what this machine needs to move those bytes, in cache or DRAM as the working set decides, so
// "% of roofline" = twin time / terse time (100 % = at the memory or cache limit). The twin's
// results are checked element by element against a scalar replay, so it cannot be elided. memcpy
// and a stream-copy loop over 1 GiB are still measured, as context only: a copy pays a read for
// ownership of its destination that an in-place update does not.
//
//   optim_bench [--sizes 1M,4M,16M,64M] [--threads 1,2] [--reps 7] [--dtype f32|bf16|f16]
//               [--json FILE] [--no-torch]
// With 16-bit params and grads the bytes per parameter are 3 * 2 + 8 (SGD-M) and 3 * 2 + 16
// (Adam): param and grad read, param written, f32 states read and written.

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "terse/core/philox.h"
#include "terse/kernels/cpu_multi_tensor.h"
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

// "64M", "512K", "2G" (binary multiples) or a plain number.
int64_t parse_size(const std::string& s) {
  const char last = s.empty() ? '\0' : s.back();
  const int64_t mult = last == 'G'   ? (int64_t{1} << 30)
                       : last == 'M' ? (int64_t{1} << 20)
                       : last == 'K' ? 1024
                                     : 1;
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
  if (a.reps < 1) {
    std::fprintf(stderr, "optim_bench: --reps must be >= 1\n");
    std::exit(2);
  }
  return a;
}

struct Timing {
  double best = 0, median = 0;  // seconds
};

Timing summarize(std::vector<double> t) {
  std::sort(t.begin(), t.end());
  return {t.front(), t[t.size() / 2]};
}

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
  return summarize(std::move(t));
}

// Best and median of `reps` timed calls each of a and b, interleaved: every round runs a once
// untimed and once timed, then b the same way. Both see the same machine state, and each is timed
// on a cache warmed with its own data (which matters only where the working set fits the L3).
std::pair<Timing, Timing> time_pair(int reps, const std::function<void()>& a,
                                    const std::function<void()>& b) {
  const auto timed = [](const std::function<void()>& fn) {
    fn();
    const auto start = Clock::now();
    fn();
    return std::chrono::duration<double>(Clock::now() - start).count();
  };
  std::vector<double> ta, tb;
  for (int r = 0; r < reps; ++r) {
    ta.push_back(timed(a));
    tb.push_back(timed(b));
  }
  return {summarize(std::move(ta)), summarize(std::move(tb))};
}

// Copy bandwidth with `threads` threads over 2 x 512 MiB, counting read + write bytes: glibc
// memcpy (non-temporal stores at this size) and a plain loop (ordinary stores, as the kernels).
// Context only: a copy's destination costs a read for ownership that an in-place update does
// not pay, so it is not the limit of an optimizer step (the traffic twins below are).
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

// ---- Traffic twins: the roofline of each optimizer's access pattern ----

// Storage of a twin's params and grads: f32, or the raw 16 bits of bf16 / f16 (integer adds, so
// the twin moves the same bytes without the conversions that are part of the real kernel's work).
template <typename T>
using TwinStorage = std::conditional_t<sizeof(T) == 2, uint16_t, float>;

// One element: reads p, g and the kStates f32 states, writes p and the states, one add per
// stream. kStates = 1 is SGD-M (b += g; p += b), 2 is Adam/AdamW (m += g; v += m; p += v). Adds
// only, so every ISA clone and the scalar replay in verify() give the same bits.
template <int kStates, typename S>
inline void twin_element(S& p, S g, float& s0, float& s1) {
  s0 = s0 + static_cast<float>(g);
  if constexpr (kStates > 1) s1 = s1 + s0;
  if constexpr (std::is_same_v<S, float>) {
    p = p + (kStates > 1 ? s1 : s0);
  } else {
    p = static_cast<S>(p + g);  // 16-bit patterns: wrapping integer add
  }
}

// The element loop of a twin, built like terse's run_range: restrict pointers, scalar state
// slots, `omp simd`, AVX-512 / AVX2 / baseline clones picked at load time.
template <int kStates, typename S>
__attribute__((target_clones("avx512f", "avx2", "default"))) void twin_range(
    S* __restrict p, const S* __restrict g, float* __restrict s0, float* __restrict s1, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float x0 = s0[i], x1 = 0;
    if constexpr (kStates > 1) x1 = s1[i];
    S pv = p[i];
    twin_element<kStates>(pv, g[i], x0, x1);
    p[i] = pv;
    s0[i] = x0;
    if constexpr (kStates > 1) s1[i] = x1;
  }
}

// The tensors of one optimizer cell (same sizes, separately allocated, as the optimizer's params,
// grads and states) stepped by the twin through the same executor shape as
// cpu_multi_tensor_apply: elements of all tensors cut into kCpuChunkElements chunks, taken
// dynamically by `threads` OpenMP threads, serial for one thread.
template <int kStates, typename S>
class TrafficTwin {
 public:
  explicit TrafficTwin(const std::vector<int64_t>& sizes) {
    terse::PhiloxStream rng(2, 0);
    offsets_.push_back(0);
    for (size_t t = 0; t < sizes.size(); ++t) {
      const auto n = static_cast<size_t>(sizes[t]);
      p_.emplace_back(n);
      g_.emplace_back(n);
      s0_.emplace_back(n, 0.0f);
      s1_.emplace_back(kStates > 1 ? n : 0, 0.0f);
      for (size_t e = 0; e < n; ++e) {
        p_[t][e] = init(rng.uniform() - 0.5f);
        g_[t][e] = init(rng.uniform() * 1e-3f);
      }
      // Samples for verify(): every kSampleStride-th element and the last one.
      for (size_t e = 0; e < n; e += kSampleStride) samples_.push_back({t, e, p_[t][e], g_[t][e]});
      if (n > 0 && (n - 1) % kSampleStride != 0) {
        samples_.push_back({t, n - 1, p_[t][n - 1], g_[t][n - 1]});
      }
      offsets_.push_back(offsets_.back() + sizes[t]);
    }
  }

  void step(int threads) {
    ++calls_;
    // The executor's own schedule, so the twin differs from the kernel only in its arithmetic.
    terse::cpu_for_each_chunk_piece(offsets_, threads, [&](size_t i, int64_t b, int64_t e) {
      twin_range<kStates>(p_[i].data() + b, g_[i].data() + b, s0_[i].data() + b,
                          kStates > 1 ? s1_[i].data() + b : nullptr, e - b);
    });
  }

  // True when every sampled element holds exactly what calls_ scalar steps give.
  bool verify() const {
    for (const Sample& s : samples_) {
      S p = s.p;
      float x0 = 0, x1 = 0;
      for (int64_t k = 0; k < calls_; ++k) twin_element<kStates>(p, s.g, x0, x1);
      if (p != p_[s.tensor][s.elem] || x0 != s0_[s.tensor][s.elem]) return false;
      if (kStates > 1 && x1 != s1_[s.tensor][s.elem]) return false;
    }
    return !samples_.empty() || offsets_.back() == 0;
  }

  // Sum of every parameter and state value: reads all the twin wrote.
  double checksum() const {
    double sum = 0;
    for (size_t t = 0; t < p_.size(); ++t) {
      for (const S v : p_[t]) sum += static_cast<double>(v);
      for (const float v : s0_[t]) sum += static_cast<double>(v);
      for (const float v : s1_[t]) sum += static_cast<double>(v);
    }
    return sum;
  }

 private:
  static constexpr size_t kSampleStride = 4093;

  struct Sample {
    size_t tensor, elem;
    S p, g;
  };

  static S init(float v) {
    if constexpr (std::is_same_v<S, float>) {
      return v;
    } else {
      return static_cast<S>(terse::float_to_bits(v) >> 16);
    }
  }

  std::vector<std::vector<S>> p_, g_;
  std::vector<std::vector<float>> s0_, s1_;
  std::vector<int64_t> offsets_;
  std::vector<Sample> samples_;
  int64_t calls_ = 0;
};

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
  // Distinct bytes touched per parameter (param, grad, states): the working set.
  double footprint_per_param(terse::DType dtype) const {
    return 2.0 * static_cast<double>(terse::dtype_size(dtype)) + 4.0 * num_states;
  }
};

const Optim kOptims[] = {{"SGD-M", "sgd:lr=0.01,momentum=0.9", 1},
                         {"Adam", "adam:lr=0.001", 2},
                         {"AdamW", "adamw:lr=0.001,weight_decay=0.01", 2}};

struct Cell {
  Timing terse, twin;
  double twin_checksum = 0;
};

// terse's step and its traffic twin on tensors of the same sizes, timed interleaved.
template <int kStates, typename T>
Cell time_cell(const Optim& o, int64_t total, int reps) {
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
  TrafficTwin<kStates, TwinStorage<T>> twin(tensor_sizes(total));
  const int threads = terse::cpu_threads();
  Cell cell;
  std::tie(cell.terse, cell.twin) = time_pair(
      reps, [&] { opt->step(); }, [&] { twin.step(threads); });
  if (!twin.verify()) {
    std::fprintf(stderr, "optim_bench: %s traffic twin gave wrong values at %lld params\n", o.label,
                 static_cast<long long>(total));
    std::exit(1);
  }
  cell.twin_checksum = twin.checksum();
  return cell;
}

template <typename T>
Cell time_cell_for(const Optim& o, int64_t total, int reps) {
  return o.num_states == 1 ? time_cell<1, T>(o, total, reps) : time_cell<2, T>(o, total, reps);
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

// 64M, 256K or a plain count.
std::string size_label(int64_t n) {
  if (n % (int64_t{1} << 20) == 0) return std::to_string(n >> 20) + "M";
  if (n % 1024 == 0) return std::to_string(n >> 10) + "K";
  return std::to_string(n);
}

// Bytes of one L3 instance and where the figure came from: /sys (the kernel's view), else
// sysconf(_SC_LEVEL3_CACHE_SIZE), else `lscpu -B`. /sys goes first because glibc's sysconf can
// be wrong under a hypervisor (320 MiB for the 32 MiB L3 of the VM these docs were measured on).
std::pair<int64_t, std::string> l3_cache() {
  try {
    for (int idx = 0; idx < 16; ++idx) {
      const std::string dir =
          "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(idx) + "/";
      std::ifstream level_file(dir + "level"), size_file(dir + "size");
      int level = 0;
      std::string size;
      if (!(level_file >> level)) break;
      if (level == 3 && (size_file >> size)) {
        const int64_t bytes = parse_size(size);
        if (bytes > 0) return {bytes, "/sys"};
      }
    }
  } catch (const std::exception&) {
  }
#ifdef _SC_LEVEL3_CACHE_SIZE
  const long sc = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (sc > 0) return {static_cast<int64_t>(sc), "sysconf"};
#endif
  if (FILE* f = popen("lscpu -B 2>/dev/null", "r")) {
    char buf[256];
    int64_t bytes = 0;
    while (std::fgets(buf, sizeof buf, f) != nullptr) {
      const std::string line = buf;
      if (line.rfind("L3 cache:", 0) == 0) {
        try {
          bytes = std::stoll(line.substr(line.find(':') + 1));
        } catch (const std::exception&) {
        }
      }
    }
    pclose(f);
    if (bytes > 0) return {bytes, "lscpu"};
  }
  return {0, "unknown"};
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  bool with_torch = args.torch;
#ifndef TERSE_BENCH_TORCH
  with_torch = false;
#endif
  const auto [l3, l3_source] = l3_cache();
  nlohmann::json out;
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  out["date"] = date;
  out["cpu"] = cpu_model();
  out["reps"] = args.reps;
  out["l3_bytes"] = l3;
  out["l3_source"] = l3_source;
  out["bytes_per_param"] = {{"SGD-M", kOptims[0].bytes_per_param(args.dtype)},
                            {"Adam", kOptims[1].bytes_per_param(args.dtype)},
                            {"AdamW", kOptims[2].bytes_per_param(args.dtype)}};
  out["results"] = nlohmann::json::array();
  out["dtype"] = terse::dtype_name(args.dtype);
  std::printf(
      "CPU optimizer step, %s params, %s, L3 %.0f MiB (%s), %s\n"
      "terse and traffic twin interleaved, best of %d steps each; %% roofline = twin / terse "
      "time\n",
      terse::dtype_name(args.dtype), cpu_model().c_str(), static_cast<double>(l3) / (1 << 20),
      l3_source.c_str(), date, args.reps);
  for (int t : args.threads) {
    terse::set_cpu_threads(t);
#ifdef TERSE_BENCH_TORCH
    torch::set_num_threads(t);
#endif
    const CopyBandwidth bw = measure_copy(t, args.reps);
    out["copy_gbps"][std::to_string(t)] = {{"memcpy", bw.memcpy_gbps}, {"loop", bw.loop_gbps}};
    std::printf(
        "\nthreads=%d  copy bandwidth (read+write, context only): memcpy %.1f GB/s, loop %.1f "
        "GB/s\n",
        t, bw.memcpy_gbps, bw.loop_gbps);
    std::printf("%-6s %8s %7s %-5s %9s %9s %7s %8s %9s %10s %8s\n", "optim", "params", "ws MiB",
                "in L3", "terse ms", "twin ms", "% roof", "GB/s", "twin GB/s", "torch ms",
                "speedup");
    for (const Optim& o : kOptims) {
      for (int64_t n : args.sizes) {
        const Cell cell =
            args.dtype == terse::DType::kBF16  ? time_cell_for<terse::BFloat16>(o, n, args.reps)
            : args.dtype == terse::DType::kF16 ? time_cell_for<terse::Half>(o, n, args.reps)
                                               : time_cell_for<float>(o, n, args.reps);
        const double ts = cell.terse.best, tw = cell.twin.best;
        const double bytes = o.bytes_per_param(args.dtype) * static_cast<double>(n);
        const double gbps = bytes / ts / 1e9, twin_gbps = bytes / tw / 1e9;
        const double pct_roofline = 100 * tw / ts;
        const double working_set = o.footprint_per_param(args.dtype) * static_cast<double>(n);
        const bool cache_resident = l3 > 0 && working_set <= static_cast<double>(l3);
        Timing torch_t;
#ifdef TERSE_BENCH_TORCH
        if (with_torch) torch_t = time_torch(o, n, args.reps, args.dtype);
#endif
        const double torch_s = torch_t.best;
        nlohmann::json row = {{"optimizer", o.label},
                              {"params", n},
                              {"threads", t},
                              {"working_set_bytes", working_set},
                              {"cache_resident", cache_resident},
                              {"terse_ms", ts * 1e3},
                              {"terse_median_ms", cell.terse.median * 1e3},
                              {"twin_ms", tw * 1e3},
                              {"twin_median_ms", cell.twin.median * 1e3},
                              {"twin_checksum", cell.twin_checksum},
                              {"gbps", gbps},
                              {"twin_gbps", twin_gbps},
                              {"pct_roofline", pct_roofline},
                              {"memcpy_gbps", bw.memcpy_gbps}};
        std::printf("%-6s %8s %7.0f %-5s %9.2f %9.2f %6.0f%% %8.1f %9.1f", o.label,
                    size_label(n).c_str(), working_set / (1 << 20), cache_resident ? "yes" : "no",
                    ts * 1e3, tw * 1e3, pct_roofline, gbps, twin_gbps);
        if (with_torch) {
          row["torch_ms"] = torch_s * 1e3;
          row["torch_median_ms"] = torch_t.median * 1e3;
          row["speedup_vs_torch"] = torch_s / ts;
          std::printf(" %10.2f %7.2fx\n", torch_s * 1e3, torch_s / ts);
        } else {
          std::printf(" %10s %8s\n", "-", "-");
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

// dgc_bench: time of DGC's sampled-threshold selection against an exact nth_element top-k and
// against one read of the array (a sum: the memory-bandwidth floor of any selection).
// Usage: dgc_bench [--n N] [--density D] [--reps R] [--threads T] [--dist normal|cauchy] [--json
// FILE]

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "terse/compress/dgc/sparse_selection.h"

namespace {

struct Timing {
  double best_s = 0.0;
  double median_s = 0.0;
};

Timing time_it(int reps, const std::function<void(int)>& fn) {
  std::vector<double> t;
  fn(-1);  // warm-up: page faults, caches
  for (int r = 0; r < reps; ++r) {
    const auto a = std::chrono::steady_clock::now();
    fn(r);
    const auto b = std::chrono::steady_clock::now();
    t.push_back(std::chrono::duration<double>(b - a).count());
  }
  std::sort(t.begin(), t.end());
  return Timing{t.front(), t[t.size() / 2]};
}

}  // namespace

int main(int argc, char** argv) {
  int64_t n = 25'600'000;
  double density = 0.001;
  int reps = 10;
  int threads = 1;
  std::string dist = "normal", json_path;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--n") {
      n = std::atoll(argv[i + 1]);
    } else if (a == "--density") {
      density = std::atof(argv[i + 1]);
    } else if (a == "--reps") {
      reps = std::atoi(argv[i + 1]);
    } else if (a == "--threads") {
      threads = std::atoi(argv[i + 1]);
    } else if (a == "--dist") {
      dist = argv[i + 1];
    } else if (a == "--json") {
      json_path = argv[i + 1];
    } else {
      std::fprintf(stderr, "unknown option %s; see the usage line in bench/dgc_bench.cc\n",
                   a.c_str());
      return 2;
    }
  }
  if (n < 1 || reps < 1 || threads < 1 || (dist != "normal" && dist != "cauchy")) {
    std::fprintf(stderr, "need --n >= 1, --reps >= 1, --threads >= 1, --dist normal|cauchy\n");
    return 2;
  }
  std::vector<float> x(static_cast<size_t>(n));
  std::mt19937 rng(1);
  if (dist == "normal") {
    std::normal_distribution<float> d(0.0f, 1e-3f);
    for (auto& e : x) e = d(rng);
  } else {
    std::cauchy_distribution<float> d(0.0f, 1e-3f);
    for (auto& e : x) e = d(rng);
  }
  const int64_t k = terse::dgc_num_selects(n, density);
  const double bytes = static_cast<double>(n) * sizeof(float);

  volatile float sink = 0.0f;
  // 16 independent accumulators so the sum vectorises (a single float chain is latency-bound).
  auto partial_sum = [&x](int64_t begin, int64_t end) {
    float acc[16] = {};
    int64_t i = begin;
    for (; i + 16 <= end; i += 16) {
      for (int j = 0; j < 16; ++j) acc[j] += x[static_cast<size_t>(i + j)];
    }
    for (; i < end; ++i) acc[0] += x[static_cast<size_t>(i)];
    float s = 0.0f;
    for (const float a : acc) s += a;
    return s;
  };
  const Timing sum_t = time_it(reps, [&](int) {
    std::vector<float> part(static_cast<size_t>(threads), 0.0f);
    std::vector<std::thread> pool;
    const int64_t chunk = (n + threads - 1) / threads;
    for (int w = 1; w < threads; ++w) {
      pool.emplace_back([&, w] {
        part[static_cast<size_t>(w)] =
            partial_sum(std::min(n, w * chunk), std::min(n, (w + 1) * chunk));
      });
    }
    part[0] = partial_sum(0, std::min(n, chunk));
    for (auto& t : pool) t.join();
    float s = 0.0f;
    for (const float p : part) s += p;
    sink = s;
  });
  terse::DgcSelectOptions opt;
  opt.threads = threads;
  int64_t dgc_count = 0, rounds_total = 0, rounds_max = 0;
  const Timing dgc_t = time_it(reps, [&](int r) {
    const auto s = terse::dgc_select(x.data(), n, density, static_cast<uint64_t>(r + 1), opt);
    if (r >= 0) {
      dgc_count = static_cast<int64_t>(s.indices.size());
      rounds_total += s.rounds;
      rounds_max = std::max<int64_t>(rounds_max, s.rounds);
    }
  });
  int64_t exact_count = 0;
  const Timing exact_t = time_it(reps, [&](int) {
    exact_count = static_cast<int64_t>(terse::exact_topk_select(x.data(), n, k).indices.size());
  });
  (void)sink;

  std::printf(
      "n %lld floats (%.1f MB), density %g, k %lld, %s data, %d reps, %d thread(s) (exact: 1)\n",
      static_cast<long long>(n), bytes / 1e6, density, static_cast<long long>(k), dist.c_str(),
      reps, threads);
  std::printf("| method | best ms | median ms | GB/s (n*4 B / best) | selected |\n");
  std::printf("|---|---:|---:|---:|---:|\n");
  auto row = [&](const char* name, const Timing& t, long long sel) {
    std::printf("| %s | %.2f | %.2f | %.2f | %lld |\n", name, t.best_s * 1e3, t.median_s * 1e3,
                bytes / t.best_s / 1e9, sel);
  };
  row("one read pass (sum)", sum_t, -1);
  row("DGC sampled threshold", dgc_t, dgc_count);
  row("exact top-k (nth_element)", exact_t, exact_count);
  std::printf("DGC adaptation rounds: mean %.2f, max %lld\n",
              static_cast<double>(rounds_total) / reps, static_cast<long long>(rounds_max));

  nlohmann::json j = {{"n", n},
                      {"density", density},
                      {"k", k},
                      {"dist", dist},
                      {"reps", reps},
                      {"threads", threads},
                      {"sum_best_s", sum_t.best_s},
                      {"dgc_best_s", dgc_t.best_s},
                      {"dgc_median_s", dgc_t.median_s},
                      {"dgc_selected", dgc_count},
                      {"exact_best_s", exact_t.best_s},
                      {"exact_median_s", exact_t.median_s}};
  std::printf("%s\n", j.dump().c_str());
  if (!json_path.empty()) std::ofstream(json_path) << j.dump(2) << "\n";
  return 0;
}

// dgc_step_bench: DGC's whole per-tensor compression as DgcExchange runs it (all_finite, then
// DgcMemory::step: compensate, sample + threshold, scans, mask; then encode) over a sequence of
// steps with U and V persistent, per phase. Each step draws a fresh g: N(0, s_i) with a fixed
// per-coordinate scale s_i (log-normal, so some coordinates are persistently larger) plus a few
// heavy-tailed entries, so V evolves as in training. The caches are flushed before every step
// (backward passes stream far more than L3 between two exchanges).
// Usage: dgc_step_bench [--sizes N,N,...] [--density D] [--steps S] [--warmup W] [--threads T]
//                       [--heavy F] [--seed X] [--json FILE]
// Prints the median over the timed steps of each phase per tensor, and the total.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "terse/compress/dgc/dgc_memory.h"
#include "terse/compress/dgc_top_k.h"
#include "terse/core/finite.h"

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

struct Tensor {
  int64_t n = 0;
  std::vector<float> u, v, g, scale;
  std::vector<uint8_t> payload;
  // Per-step phase seconds (ms on output) and counts.
  std::vector<double> finite, compensate, threshold, scan, mask, encode, total;
  std::vector<double> rounds, full_scans, list_scans, selected;
};

struct Config {
  std::vector<int64_t> sizes = {4'200'000, 1'600'000};  // the wide-mlp's two matrices
  double density = 0.001;
  int steps = 30, warmup = 5, threads = 1;
  double heavy = 1e-4;  // fraction of g entries drawn from a Cauchy, x30
  uint64_t seed = 1;
  std::string json_path;
};

bool parse(int argc, char** argv, Config& c) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], val = argv[i + 1];
    if (a == "--sizes") {
      c.sizes.clear();
      std::stringstream ss(val);
      for (std::string item; std::getline(ss, item, ',');)
        c.sizes.push_back(std::atoll(item.c_str()));
    } else if (a == "--density") {
      c.density = std::atof(val.c_str());
    } else if (a == "--steps") {
      c.steps = std::atoi(val.c_str());
    } else if (a == "--warmup") {
      c.warmup = std::atoi(val.c_str());
    } else if (a == "--threads") {
      c.threads = std::atoi(val.c_str());
    } else if (a == "--heavy") {
      c.heavy = std::atof(val.c_str());
    } else if (a == "--seed") {
      c.seed = std::strtoull(val.c_str(), nullptr, 10);
    } else if (a == "--json") {
      c.json_path = val;
    } else {
      std::fprintf(stderr, "unknown option %s; see the usage line in bench/dgc_step_bench.cc\n",
                   a.c_str());
      return false;
    }
  }
  for (const int64_t n : c.sizes) {
    if (n < 1) return false;
  }
  return !c.sizes.empty() && c.steps >= 1 && c.warmup >= 0 && c.threads >= 1 && c.density > 0.0 &&
         c.density <= 1.0 && c.heavy >= 0.0 && c.heavy < 1.0;
}

void draw(Tensor& t, std::mt19937_64& rng, double heavy) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::cauchy_distribution<float> cauchy(0.0f, 1.0f);
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  for (int64_t i = 0; i < t.n; ++i) {
    const auto j = static_cast<size_t>(i);
    float x = normal(rng);
    if (heavy > 0.0 && coin(rng) < heavy) x = 30.0f * cauchy(rng);
    t.g[j] = 1e-3f * t.scale[j] * x;
  }
}

void flush_caches(std::vector<float>& junk) {
  for (size_t i = 0; i < junk.size(); i += 16) junk[i] += 1.0f;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  if (!parse(argc, argv, c)) {
    std::fprintf(stderr,
                 "need --sizes N[,N...] >= 1, --steps >= 1, --warmup >= 0, --threads >= 1, "
                 "--density in (0, 1], --heavy in [0, 1)\n");
    return 2;
  }
  std::mt19937_64 rng(c.seed);
  std::vector<Tensor> tensors(c.sizes.size());
  for (size_t j = 0; j < tensors.size(); ++j) {
    Tensor& t = tensors[j];
    t.n = c.sizes[j];
    const auto n = static_cast<size_t>(t.n);
    t.u.assign(n, 0.0f);
    t.v.assign(n, 0.0f);
    t.g.assign(n, 0.0f);
    t.scale.resize(n);
    std::normal_distribution<float> z(0.0f, 0.5f);
    for (auto& s : t.scale) s = std::exp(z(rng));
  }
  std::vector<float> junk(size_t{64} << 20 >> 2, 0.0f);  // 64 MB, twice L3
  const terse::DgcTopK dgc(c.density, terse::ValueCoding::kF32);
  terse::DgcMemoryOptions mo;
  mo.momentum = 0.9;
  mo.momentum_masking = true;
  terse::DgcSelectOptions so;
  so.threads = c.threads;
  so.seed = c.seed;

  for (int step = 0; step < c.warmup + c.steps; ++step) {
    for (Tensor& t : tensors) draw(t, rng, c.heavy);
    flush_caches(junk);
    for (size_t j = 0; j < tensors.size(); ++j) {
      Tensor& t = tensors[j];
      const auto t0 = Clock::now();
      const bool ok = terse::all_finite(t.g.data(), t.n);
      const double finite_s = since(t0);
      if (!ok) {
        std::fprintf(stderr, "non-finite gradient drawn; change --seed\n");
        return 1;
      }
      terse::DgcStepProfile p;
      const terse::SparseSelection sel =
          terse::DgcMemory::step(t.u.data(), t.v.data(), t.g.data(), t.n, c.density,
                                 static_cast<uint64_t>(step) * 16 + j, mo, so, &p);
      const auto te = Clock::now();
      const size_t cap = dgc.max_encoded_bytes(t.n);
      t.payload.resize(cap);
      dgc.encode_selection(sel, t.n, t.payload.data(), cap);
      const double encode_s = since(te);
      const double total_s = since(t0);
      if (step < c.warmup) continue;
      t.finite.push_back(finite_s);
      t.compensate.push_back(p.compensate_s);
      t.threshold.push_back(p.select.threshold_s);
      t.scan.push_back(p.select.scan_s);
      t.mask.push_back(p.mask_s);
      t.encode.push_back(encode_s);
      t.total.push_back(total_s);
      t.rounds.push_back(sel.rounds);
      t.full_scans.push_back(p.select.full_scans);
      t.list_scans.push_back(p.select.list_scans);
      t.selected.push_back(static_cast<double>(sel.indices.size()));
    }
  }

  std::printf("density %g, %d timed steps (after %d), %d thread(s), heavy %g\n", c.density, c.steps,
              c.warmup, c.threads, c.heavy);
  std::printf(
      "| n | finite | compensate | sample+thr | scans | mask | encode | total ms | rounds | "
      "full scans | list scans | selected |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  nlohmann::json out = {{"density", c.density}, {"steps", c.steps},
                        {"threads", c.threads}, {"heavy", c.heavy},
                        {"seed", c.seed},       {"tensors", nlohmann::json::array()}};
  std::vector<double> all_total(static_cast<size_t>(c.steps), 0.0);
  for (const Tensor& t : tensors) {
    auto ms = [](const std::vector<double>& v) { return median(v) * 1e3; };
    auto mean = [](const std::vector<double>& v) {
      double s = 0.0;
      for (const double x : v) s += x;
      return v.empty() ? 0.0 : s / static_cast<double>(v.size());
    };
    std::printf(
        "| %lld | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.2f | %.2f | %.2f | %.0f |\n",
        static_cast<long long>(t.n), ms(t.finite), ms(t.compensate), ms(t.threshold), ms(t.scan),
        ms(t.mask), ms(t.encode), ms(t.total), mean(t.rounds), mean(t.full_scans),
        mean(t.list_scans), mean(t.selected));
    for (size_t s = 0; s < t.total.size(); ++s) all_total[s] += t.total[s];
    out["tensors"].push_back({{"n", t.n},
                              {"finite_ms", ms(t.finite)},
                              {"compensate_ms", ms(t.compensate)},
                              {"threshold_ms", ms(t.threshold)},
                              {"scan_ms", ms(t.scan)},
                              {"mask_ms", ms(t.mask)},
                              {"encode_ms", ms(t.encode)},
                              {"total_ms", ms(t.total)},
                              {"rounds_mean", mean(t.rounds)},
                              {"full_scans_mean", mean(t.full_scans)},
                              {"list_scans_mean", mean(t.list_scans)}});
  }
  out["step_total_ms"] = median(all_total) * 1e3;
  std::printf("step total (all tensors) median %.3f ms\n", median(all_total) * 1e3);
  std::printf("%s\n", out.dump().c_str());
  if (!c.json_path.empty()) std::ofstream(c.json_path) << out.dump(2) << "\n";
  return 0;
}

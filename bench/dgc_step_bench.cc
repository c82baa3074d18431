// dgc_step_bench: DGC's whole per-tensor compression as DgcExchange runs it (all_finite, then
// DgcMemory::step: compensate, sample + threshold, scans, mask; then encode) over a sequence of
// steps with U and V persistent, per phase. Each step draws a fresh g: N(0, s_i) with a fixed
// per-coordinate scale s_i (log-normal, so some coordinates are persistently larger) plus a few
// heavy-tailed entries, so V evolves as in training. The caches are flushed before every step
// (backward passes stream far more than L3 between two exchanges).
// --fuse off runs DgcMemory::step without a state (the path before the fusion); on runs it with a
// DgcStepState, as DgcExchange now does; both runs the two on separate U and V from the same g,
// alternating which goes first, and checks that they give the same bits.
// Usage: dgc_step_bench [--sizes N,N,...] [--density D] [--steps S] [--warmup W] [--threads T]
//                       [--fuse off|on|both] [--list-k F] [--heavy F] [--seed X] [--json FILE]
// Prints the median over the timed steps of each phase per tensor, and the total.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

// One way of running the compression (fused or not) on its own U and V.
struct Run {
  bool fused = false;
  std::vector<float> u, v;
  terse::DgcStepState state;
  std::vector<uint8_t> payload;
  terse::SparseSelection last;
  // Per-step phase seconds (ms on output) and counts.
  std::vector<double> finite, compensate, threshold, scan, mask, encode, total;
  std::vector<double> rounds, full_scans, list_scans, selected, overflows, listed;
};

struct Tensor {
  int64_t n = 0;
  std::vector<float> g, scale;
  std::vector<Run> runs;
};

struct Config {
  std::vector<int64_t> sizes = {4'200'000, 1'600'000};  // the wide-mlp's two matrices
  double density = 0.001;
  int steps = 30, warmup = 1000, threads = 1;
  double heavy = 1e-4;  // fraction of g entries drawn from a Cauchy, x30
  uint64_t seed = 1;
  std::string fuse = "both";
  double list_k = 4.0;
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
    } else if (a == "--fuse") {
      c.fuse = val;
    } else if (a == "--list-k") {
      c.list_k = std::atof(val.c_str());
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
  return !c.sizes.empty() && (c.fuse == "off" || c.fuse == "on" || c.fuse == "both") &&
         c.list_k >= 1.0 && c.list_k <= 1e6 && c.steps >= 1 && c.warmup >= 0 && c.threads >= 1 &&
         c.density > 0.0 && c.density <= 1.0 && c.heavy >= 0.0 && c.heavy < 1.0;
}

// A pool of N(0, 1) draws with a fraction `heavy` of 30 x Cauchy, 2^23 long: each step reads it
// from a random offset, which costs a copy instead of 5.8M normal draws (a long warm-up needs
// thousands of steps).
std::vector<float> make_pool(std::mt19937_64& rng, double heavy) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::cauchy_distribution<float> cauchy(0.0f, 1.0f);
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  std::vector<float> pool(size_t{1} << 23);
  for (auto& x : pool) x = heavy > 0.0 && coin(rng) < heavy ? 30.0f * cauchy(rng) : normal(rng);
  return pool;
}

void draw(Tensor& t, std::mt19937_64& rng, const std::vector<float>& pool) {
  const size_t mask = pool.size() - 1;
  const size_t off = rng() & mask;
  for (size_t i = 0; i < t.g.size(); ++i) t.g[i] = 1e-3f * t.scale[i] * pool[(off + i) & mask];
}

void flush_caches(std::vector<float>& junk) {
  for (size_t i = 0; i < junk.size(); i += 16) junk[i] += 1.0f;
}

// One tensor's compression as DgcExchange::exchange runs it; false when g is not finite.
bool compress(Tensor& t, Run& r, const Config& c, uint64_t seed_step, const terse::DgcTopK& dgc,
              const terse::DgcMemoryOptions& mo, const terse::DgcSelectOptions& so, bool record) {
  const auto t0 = Clock::now();
  const bool ok = terse::all_finite(t.g.data(), t.n);
  const double finite_s = since(t0);
  if (!ok) return false;
  terse::DgcStepProfile p;
  r.last = terse::DgcMemory::step(r.u.data(), r.v.data(), t.g.data(), t.n, c.density, seed_step, mo,
                                  so, r.fused ? &r.state : nullptr, &p);
  const auto te = Clock::now();
  const size_t cap = dgc.max_encoded_bytes(t.n);
  r.payload.resize(cap);
  r.payload.resize(dgc.encode_selection(r.last, t.n, r.payload.data(), cap));
  const double encode_s = since(te);
  const double total_s = since(t0);
  if (!record) return true;
  r.finite.push_back(finite_s);
  r.compensate.push_back(p.compensate_s);
  r.threshold.push_back(p.select.threshold_s);
  r.scan.push_back(p.select.scan_s);
  r.mask.push_back(p.mask_s);
  r.encode.push_back(encode_s);
  r.total.push_back(total_s);
  r.rounds.push_back(r.last.rounds);
  r.full_scans.push_back(p.select.full_scans);
  r.list_scans.push_back(p.select.list_scans);
  r.selected.push_back(static_cast<double>(r.last.indices.size()));
  r.overflows.push_back(r.fused && r.state.list_overflowed ? 1.0 : 0.0);
  const terse::DgcPrescan& pre = r.state.prescan;
  r.listed.push_back(r.fused && pre.has_list ? static_cast<double>(pre.list.idx.size()) : 0.0);
  return true;
}

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

double mean(const std::vector<double>& v) {
  double s = 0.0;
  for (const double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  if (!parse(argc, argv, c)) {
    std::fprintf(stderr,
                 "need --sizes N[,N...] >= 1, --steps >= 1, --warmup >= 0, --threads >= 1, "
                 "--density in (0, 1], --fuse off|on|both, --list-k in [1, 1e6], --heavy in [0, "
                 "1)\n");
    return 2;
  }
  std::vector<bool> modes;
  if (c.fuse != "on") modes.push_back(false);
  if (c.fuse != "off") modes.push_back(true);
  std::mt19937_64 rng(c.seed);
  std::vector<Tensor> tensors(c.sizes.size());
  for (size_t j = 0; j < tensors.size(); ++j) {
    Tensor& t = tensors[j];
    t.n = c.sizes[j];
    const auto n = static_cast<size_t>(t.n);
    t.g.assign(n, 0.0f);
    t.scale.resize(n);
    std::normal_distribution<float> z(0.0f, 0.5f);
    for (auto& s : t.scale) s = std::exp(z(rng));
    for (const bool fused : modes) {
      Run r;
      r.fused = fused;
      r.u.assign(n, 0.0f);
      r.v.assign(n, 0.0f);
      r.state.list_k = c.list_k;
      t.runs.push_back(std::move(r));
    }
  }
  std::vector<float> junk(size_t{64} << 20 >> 2, 0.0f);  // 64 MB, twice L3
  const terse::DgcTopK dgc(c.density, terse::ValueCoding::kF32);
  terse::DgcMemoryOptions mo;
  mo.momentum = 0.9;
  mo.momentum_masking = true;
  terse::DgcSelectOptions so;
  so.threads = c.threads;
  so.seed = c.seed;

  const std::vector<float> pool = make_pool(rng, c.heavy);
  // The warm-up brings V near its steady state (a threshold that moves little from step to
  // step, as in training after DGC's own warm-up) on the last run only, untimed; the others
  // start from its U, V.
  for (int step = 0; step < c.warmup; ++step) {
    for (size_t j = 0; j < tensors.size(); ++j) {
      Tensor& t = tensors[j];
      draw(t, rng, pool);
      if (!compress(t, t.runs.back(), c, static_cast<uint64_t>(step) * 16 + j, dgc, mo, so,
                    false)) {
        std::fprintf(stderr, "non-finite gradient drawn; change --seed\n");
        return 1;
      }
    }
  }
  for (Tensor& t : tensors) {
    for (Run& r : t.runs) {
      r.u = t.runs.back().u;
      r.v = t.runs.back().v;
    }
  }
  for (int step = c.warmup; step < c.warmup + c.steps; ++step) {
    for (Tensor& t : tensors) draw(t, rng, pool);
    for (size_t m = 0; m < modes.size(); ++m) {
      const size_t mode = (m + static_cast<size_t>(step)) % modes.size();  // alternate the order
      flush_caches(junk);
      for (size_t j = 0; j < tensors.size(); ++j) {
        if (!compress(tensors[j], tensors[j].runs[mode], c, static_cast<uint64_t>(step) * 16 + j,
                      dgc, mo, so, true)) {
          std::fprintf(stderr, "non-finite gradient drawn; change --seed\n");
          return 1;
        }
      }
    }
    for (const Tensor& t : tensors) {
      if (t.runs.size() < 2) continue;
      const Run &a = t.runs[0], &b = t.runs[1];
      if (!same_bits(a.u, b.u) || !same_bits(a.v, b.v) || !same_bits(a.payload, b.payload) ||
          a.last.indices != b.last.indices || a.last.threshold != b.last.threshold ||
          a.last.rounds != b.last.rounds) {
        std::fprintf(stderr, "step %d, n %lld: fused and unfused runs differ\n", step,
                     static_cast<long long>(t.n));
        return 1;
      }
    }
  }

  std::printf("density %g, %d timed steps (after %d), %d thread(s), heavy %g, list_k %g%s\n",
              c.density, c.steps, c.warmup, c.threads, c.heavy, c.list_k,
              modes.size() > 1 ? "; fused and unfused gave the same bits at every step" : "");
  std::printf(
      "| fused | n | finite | compensate | sample+thr | scans | mask | encode | total ms | rounds "
      "| full scans | list scans | overflows | listed | selected |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  nlohmann::json out = {{"density", c.density},
                        {"steps", c.steps},
                        {"threads", c.threads},
                        {"heavy", c.heavy},
                        {"seed", c.seed},
                        {"list_k", c.list_k},
                        {"runs", nlohmann::json::array()}};
  for (size_t mode = 0; mode < modes.size(); ++mode) {
    std::vector<double> all_total(static_cast<size_t>(c.steps), 0.0);
    nlohmann::json jt = nlohmann::json::array();
    for (const Tensor& t : tensors) {
      const Run& r = t.runs[mode];
      auto ms = [](const std::vector<double>& v) { return median(v) * 1e3; };
      std::printf(
          "| %s | %lld | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.2f | %.2f | %.2f | "
          "%.2f | %.0f | %.0f |\n",
          r.fused ? "on" : "off", static_cast<long long>(t.n), ms(r.finite), ms(r.compensate),
          ms(r.threshold), ms(r.scan), ms(r.mask), ms(r.encode), ms(r.total), mean(r.rounds),
          mean(r.full_scans), mean(r.list_scans), mean(r.overflows), mean(r.listed),
          mean(r.selected));
      for (size_t s = 0; s < r.total.size(); ++s) all_total[s] += r.total[s];
      jt.push_back({{"n", t.n},
                    {"finite_ms", ms(r.finite)},
                    {"compensate_ms", ms(r.compensate)},
                    {"threshold_ms", ms(r.threshold)},
                    {"scan_ms", ms(r.scan)},
                    {"mask_ms", ms(r.mask)},
                    {"encode_ms", ms(r.encode)},
                    {"total_ms", ms(r.total)},
                    {"rounds_mean", mean(r.rounds)},
                    {"full_scans_mean", mean(r.full_scans)},
                    {"list_scans_mean", mean(r.list_scans)},
                    {"overflows_mean", mean(r.overflows)},
                    {"listed_mean", mean(r.listed)}});
    }
    const bool fused = modes[mode];
    std::printf("fused %s: step total (all tensors) median %.3f ms\n", fused ? "on" : "off",
                median(all_total) * 1e3);
    out["runs"].push_back(
        {{"fused", fused}, {"tensors", jt}, {"step_total_ms", median(all_total) * 1e3}});
  }
  std::printf("%s\n", out.dump().c_str());
  if (!c.json_path.empty()) std::ofstream(c.json_path) << out.dump(2) << "\n";
  return 0;
}

// ef21_aggregate_bench: single-threaded time of ErrorFeedback::decode_and_aggregate, the EF21 /
// EF21-W receiver side (g += sum_i w_i decode(c_i), out = g), for W workers' payloads of one
// bucket of n floats, against the dense algorithm timed in the same run: decode each payload
// into a zero-filled n-float scratch, add w_i * scratch into an n-float sum, then g += sum (what
// decode_and_aggregate did before weighted decoding; 2W + 2 passes over n floats). Both start
// from g = 0 once and must give the same bits. Also one read pass of n floats as a yardstick.
// Usage: ef21_aggregate_bench [--n N] [--workers W] [--reps R] [--kind ef21|ef21w]
//                             [--spec SPEC]... [--json FILE]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "terse/compress/error_feedback.h"
#include "terse/compress/wire_format.h"

namespace {

using terse::PayloadView;
using terse::TensorView;

struct Timing {
  double best_s = 0.0;
  double median_s = 0.0;
};

// Median and best of reps timed runs after one warm-up run.
Timing time_it(int reps, const std::function<void()>& fn) {
  std::vector<double> t;
  fn();
  for (int r = 0; r < reps; ++r) {
    const auto a = std::chrono::steady_clock::now();
    fn();
    const auto b = std::chrono::steady_clock::now();
    t.push_back(std::chrono::duration<double>(b - a).count());
  }
  std::sort(t.begin(), t.end());
  return Timing{t.front(), t[t.size() / 2]};
}

// The dense algorithm: one zero-filled decode and one dense weighted add per payload.
struct DenseAggregate {
  std::vector<float> scratch, sum, agg;
  void run(const terse::Compressor& c, const std::vector<PayloadView>& payloads,
           const std::vector<double>& weights, float* out) {
    const size_t n = agg.size();
    const TensorView tv = TensorView::of(scratch.data(), static_cast<int64_t>(n));
    sum.assign(n, 0.0f);
    for (size_t i = 0; i < payloads.size(); ++i) {
      c.decode(payloads[i].data, payloads[i].len, tv, false);
      const auto w = static_cast<float>(weights[i]);
      for (size_t j = 0; j < n; ++j) sum[j] += w * scratch[j];
    }
    for (size_t j = 0; j < n; ++j) {
      agg[j] += sum[j];
      out[j] = agg[j];
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  int64_t n = int64_t{1} << 22;
  int workers = 8;
  int reps = 20;
  std::string kind = "ef21";
  std::vector<std::string> specs;
  std::string json_path;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--n") {
      n = std::atoll(argv[i + 1]);
    } else if (a == "--workers") {
      workers = std::atoi(argv[i + 1]);
    } else if (a == "--reps") {
      reps = std::atoi(argv[i + 1]);
    } else if (a == "--kind") {
      kind = argv[i + 1];
    } else if (a == "--spec") {
      specs.emplace_back(argv[i + 1]);
    } else if (a == "--json") {
      json_path = argv[i + 1];
    } else {
      std::fprintf(stderr,
                   "unknown option %s; see the usage line in bench/ef21_aggregate_bench.cc\n",
                   a.c_str());
      return 2;
    }
  }
  if (n < 1 || workers < 1 || reps < 1 || (kind != "ef21" && kind != "ef21w")) {
    std::fprintf(stderr, "need --n >= 1, --workers >= 1, --reps >= 1, --kind ef21 or ef21w\n");
    return 2;
  }
  if (specs.empty())
    specs = {"topk:density=0.01", "topk:density=0.001", "randk:density=0.01", "sign",
             "qsgd:levels=127"};

  const auto nz = static_cast<size_t>(n);
  std::vector<double> smoothness;  // EF21-W: unequal L_i = 1, 2, ..., W
  if (kind == "ef21w")
    for (int i = 0; i < workers; ++i) smoothness.push_back(1.0 + i);
  std::vector<std::vector<float>> grads(static_cast<size_t>(workers), std::vector<float>(nz));
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& g : grads)
    for (auto& e : g) e = normal(rng);

  std::vector<float> out(nz, 0.0f), ref_out(nz, 0.0f);
  volatile float sink = 0.0f;
  const Timing read_t = time_it(reps, [&] {
    float acc[16] = {};
    size_t i = 0;
    for (; i + 16 <= nz; i += 16)
      for (size_t j = 0; j < 16; ++j) acc[j] += grads[0][i + j];
    for (; i < nz; ++i) acc[0] += grads[0][i];
    float s = 0.0f;
    for (const float a : acc) s += a;
    sink = s;
  });
  (void)sink;

  std::printf("%s, W %d workers, n %lld floats (%.1f MB) of N(0,1), %d reps (median), 1 thread\n",
              kind.c_str(), workers, static_cast<long long>(n), static_cast<double>(n) * 4 / 1e6,
              reps);
  std::printf("one read pass of n floats: median %.3f ms\n", read_t.median_s * 1e3);
  std::printf(
      "| spec | entries (all W) | dense ms | dense x pass | decode_and_aggregate ms | x pass | "
      "speedup |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|\n");

  nlohmann::json rows = nlohmann::json::array();
  for (const auto& spec : specs) {
    const std::shared_ptr<const terse::Compressor> c(terse::make_compressor(spec));
    // Worker i's first EF21 payload is C(grad_i / (n w_i)): g_i starts at 0.
    std::vector<std::vector<uint8_t>> bufs(static_cast<size_t>(workers));
    std::vector<PayloadView> payloads;
    uint64_t entries = 0;
    std::unique_ptr<terse::ErrorFeedback> rank0;
    for (int i = 0; i < workers; ++i) {
      terse::ErrorFeedbackOptions o;
      o.world_size = workers;
      o.rank = i;
      o.smoothness = smoothness;
      auto ef = terse::make_error_feedback(kind, c, o);
      auto& buf = bufs[static_cast<size_t>(i)];
      buf.resize(ef->max_encoded_bytes(n));
      const auto& g = grads[static_cast<size_t>(i)];
      const size_t len =
          ef->encode(0, TensorView::of(const_cast<float*>(g.data()), n), 7, buf.data(), buf.size());
      payloads.push_back(PayloadView{buf.data(), len});
      entries += terse::read_payload_header(buf.data(), len).count;
      if (i == 0) rank0 = std::move(ef);
    }
    DenseAggregate dense;
    dense.scratch.assign(nz, 0.0f);
    dense.agg.assign(nz, 0.0f);
    // Same bits from g = 0 (rank 0 has no aggregate yet: encode keeps only the residual).
    dense.run(*c, payloads, rank0->weights(), ref_out.data());
    rank0->decode_and_aggregate(0, payloads, TensorView::of(out.data(), n));
    if (std::memcmp(out.data(), ref_out.data(), nz * sizeof(float)) != 0) {
      std::fprintf(stderr, "%s: decode_and_aggregate and the dense algorithm differ\n",
                   spec.c_str());
      return 1;
    }
    const Timing dense_t =
        time_it(reps, [&] { dense.run(*c, payloads, rank0->weights(), ref_out.data()); });
    const Timing ef_t = time_it(
        reps, [&] { rank0->decode_and_aggregate(0, payloads, TensorView::of(out.data(), n)); });
    const double pass = read_t.median_s;
    std::printf("| `%s` | %llu | %.2f | %.1f | %.2f | %.1f | %.2f |\n", spec.c_str(),
                static_cast<unsigned long long>(entries), dense_t.median_s * 1e3,
                dense_t.median_s / pass, ef_t.median_s * 1e3, ef_t.median_s / pass,
                dense_t.median_s / ef_t.median_s);
    std::fflush(stdout);
    rows.push_back({{"spec", spec},
                    {"entries", entries},
                    {"dense_median_s", dense_t.median_s},
                    {"dense_best_s", dense_t.best_s},
                    {"decode_and_aggregate_median_s", ef_t.median_s},
                    {"decode_and_aggregate_best_s", ef_t.best_s}});
  }
  nlohmann::json j = {{"kind", kind}, {"n", n},       {"workers", workers},
                      {"reps", reps}, {"threads", 1}, {"read_pass_median_s", read_t.median_s},
                      {"rows", rows}};
  if (!json_path.empty()) std::ofstream(json_path) << j.dump(2) << "\n";
  return 0;
}

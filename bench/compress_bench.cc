// compress_bench: single-threaded encode and decode time of every compressor in
// compressor_names() with typical options, on n N(0, 1) floats (default 25.6M: ResNet-50's
// gradient), against two memory-pass references taken in the same run: a read pass (a sum, 16
// accumulators) and a memcpy of the array. GB/s are of the f32 input bytes (n * 4).
// Usage: compress_bench [--n N] [--reps R] [--spec SPEC]... [--json FILE]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "terse/compress/compressor.h"

namespace {

// Median and best of reps timed runs after one warm-up run (page faults, caches).
struct Timing {
  double best_s = 0.0;
  double median_s = 0.0;
};

Timing time_it(int reps, const std::function<void(int)>& fn) {
  std::vector<double> t;
  fn(-1);
  for (int r = 0; r < reps; ++r) {
    const auto a = std::chrono::steady_clock::now();
    fn(r);
    const auto b = std::chrono::steady_clock::now();
    t.push_back(std::chrono::duration<double>(b - a).count());
  }
  std::sort(t.begin(), t.end());
  return Timing{t.front(), t[t.size() / 2]};
}

// Typical options of every compressor name (main() checks each name is covered).
const std::vector<std::string> kDefaultSpecs = {"topk:density=0.001",
                                                "topk:density=0.001,values=f16",
                                                "topk:density=0.01",
                                                "topk:density=0.01,values=f16",
                                                "randk:density=0.001",
                                                "randk:density=0.001,values=f16",
                                                "randk:density=0.01",
                                                "randk:density=0.01,values=f16",
                                                "dgc:density=0.001",
                                                "dgc:density=0.001,values=f16",
                                                "dgc:density=0.01",
                                                "dgc:density=0.01,values=f16",
                                                "qsgd:levels=127",
                                                "sign",
                                                "onebit",
                                                "terngrad",
                                                "fp16",
                                                "bf16"};

}  // namespace

int main(int argc, char** argv) {
  int64_t n = 25'600'000;
  int reps = 5;
  std::vector<std::string> specs;
  std::string json_path;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--n") {
      n = std::atoll(argv[i + 1]);
    } else if (a == "--reps") {
      reps = std::atoi(argv[i + 1]);
    } else if (a == "--spec") {
      specs.emplace_back(argv[i + 1]);
    } else if (a == "--json") {
      json_path = argv[i + 1];
    } else {
      std::fprintf(stderr, "unknown option %s; see the usage line in bench/compress_bench.cc\n",
                   a.c_str());
      return 2;
    }
  }
  if (n < 1 || reps < 1) {
    std::fprintf(stderr, "need --n >= 1 and --reps >= 1\n");
    return 2;
  }
  if (specs.empty()) {
    specs = kDefaultSpecs;
    for (const auto& name : terse::compressor_names()) {
      const bool covered = std::any_of(specs.begin(), specs.end(), [&](const std::string& s) {
        return s.substr(0, s.find(':')) == name;
      });
      if (!covered) {
        std::fprintf(stderr, "compressor '%s' has no spec in kDefaultSpecs; add one\n",
                     name.c_str());
        return 2;
      }
    }
  }

  std::vector<float> x(static_cast<size_t>(n));
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& e : x) e = normal(rng);
  std::vector<float> out(static_cast<size_t>(n), 0.0f);
  const double bytes = static_cast<double>(n) * sizeof(float);

  // The memory references: every encoder reads the array at least once, every decoder writes it.
  volatile float sink = 0.0f;
  const Timing read_t = time_it(reps, [&](int) {
    float acc[16] = {};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      for (int j = 0; j < 16; ++j) acc[j] += x[static_cast<size_t>(i + j)];
    }
    for (; i < n; ++i) acc[0] += x[static_cast<size_t>(i)];
    float s = 0.0f;
    for (const float a : acc) s += a;
    sink = s;
  });
  const Timing copy_t =
      time_it(reps, [&](int) { std::memcpy(out.data(), x.data(), static_cast<size_t>(bytes)); });
  (void)sink;
  const double pass = read_t.median_s;

  std::printf("n %lld floats (%.1f MB) of N(0,1), %d reps (median), 1 thread\n",
              static_cast<long long>(n), bytes / 1e6, reps);
  std::printf(
      "one read pass (sum): median %.2f ms (%.1f GB/s); memcpy: median %.2f ms (%.1f GB/s "
      "of source bytes)\n",
      read_t.median_s * 1e3, bytes / read_t.median_s / 1e9, copy_t.median_s * 1e3,
      bytes / copy_t.median_s / 1e9);
  std::printf(
      "| spec | payload B | bits/elt | encode ms | encode GB/s | encode x pass | decode ms | "
      "decode GB/s | decode x pass |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");

  nlohmann::json rows = nlohmann::json::array();
  for (const auto& spec : specs) {
    const auto c = terse::make_compressor(spec);
    std::vector<uint8_t> buf(c->max_encoded_bytes(n));
    size_t len = 0;
    const terse::TensorView in = terse::TensorView::of(x.data(), n);
    const Timing enc = time_it(reps, [&](int r) {
      len = c->encode(in, static_cast<uint64_t>(r + 2), buf.data(), buf.size());
    });
    const terse::TensorView view = terse::TensorView::of(out.data(), n);
    const Timing dec = time_it(reps, [&](int) { c->decode(buf.data(), len, view, false); });
    const double bits = 8.0 * static_cast<double>(len) / static_cast<double>(n);
    std::printf("| `%s` | %zu | %.4f | %.2f | %.2f | %.1f | %.2f | %.2f | %.1f |\n", spec.c_str(),
                len, bits, enc.median_s * 1e3, bytes / enc.median_s / 1e9, enc.median_s / pass,
                dec.median_s * 1e3, bytes / dec.median_s / 1e9, dec.median_s / pass);
    std::fflush(stdout);
    rows.push_back({{"spec", spec},
                    {"payload_bytes", len},
                    {"bits_per_element", bits},
                    {"encode_median_s", enc.median_s},
                    {"encode_best_s", enc.best_s},
                    {"decode_median_s", dec.median_s},
                    {"decode_best_s", dec.best_s}});
  }
  nlohmann::json j = {{"n", n},
                      {"reps", reps},
                      {"threads", 1},
                      {"read_pass_median_s", read_t.median_s},
                      {"memcpy_median_s", copy_t.median_s},
                      {"rows", rows}};
  if (!json_path.empty()) std::ofstream(json_path) << j.dump(2) << "\n";
  return 0;
}

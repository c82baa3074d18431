// one_bit_all_reduce_bench: OneBitAllReduce (1-bit Adam's two-phase compressed all-reduce)
// against a dense f32 all-reduce (comm.all_reduce, sum) of the same buffer, per rank: time per
// call and bytes. Run under MPI:
//   mpiexec -n 4 one_bit_all_reduce_bench [--sizes 1M,4M,16M,64M] [--reps R] [--threads T]
//                                         [--variants deferred,overlap,pairwise] [--json FILE]
// --threads: OneBitAllReduce::Options::threads per rank (default 1). Without mpiexec it runs
// one rank in-process ("local"). The 1-bit call runs once per variant and size: "deferred" (the
// default Options), "overlap" (Options::defer_worker_error off: the worker error update under
// the all-to-all) and "pairwise" (Options::pairwise, W - 1 rounds each, with the overlap); for
// each, a line splits rank 0's median call into the report's compress / wait / overlap / drain.
// The table's 1-bit column is the first variant's.
// Each timed call starts after a barrier; its time is the slowest rank's (max over ranks), and
// the table shows the median over R calls (after one warm-up call of each kind). "cpu" is
// the calling thread's CPU time (max over ranks, median over calls): on an oversubscribed
// machine it separates the work done from the time spent waiting for a core.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "collective_timing.h"
#include "terse/comm/algorithms/one_bit_all_reduce.h"
#include "terse/comm/communicator.h"
#include "terse/core/philox.h"

namespace {

using terse::Communicator;
using terse::ReduceOp;
using terse::TensorView;
using terse::bench::parse_size;
using terse::bench::size_name;
using terse::bench::time_collective;
using terse::bench::Timing;

// Median over calls (the warm-up call excluded) of each part of rank 0's report, in ms.
nlohmann::json split_ms(const std::vector<terse::OneBitAllReduceReport>& reports) {
  const auto median = [&](double terse::OneBitAllReduceReport::*field) {
    std::vector<double> v;
    for (size_t i = 1; i < reports.size(); ++i) v.push_back(reports[i].*field * 1e3);
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  return {{"compress", median(&terse::OneBitAllReduceReport::compress_s)},
          {"wait", median(&terse::OneBitAllReduceReport::wait_s)},
          {"overlap", median(&terse::OneBitAllReduceReport::overlap_s)},
          {"drain", median(&terse::OneBitAllReduceReport::drain_s)}};
}

void print_split(const char* what, const Timing& t,
                 const std::vector<terse::OneBitAllReduceReport>& reports) {
  const nlohmann::json s = split_ms(reports);
  std::printf(
      "  %-15s %8.2f ms (slowest rank); rank 0: compress %.2f, wait %.2f, overlap %.2f, "
      "drain %.2f\n",
      what, t.wall_s * 1e3, s["compress"].get<double>(), s["wait"].get<double>(),
      s["overlap"].get<double>(), s["drain"].get<double>());
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> sizes = {1 << 20, 4 << 20, 16 << 20, 64 << 20};
  int reps = 5;
  int threads = 1;
  std::vector<std::string> variants = {"deferred", "overlap", "pairwise"};
  std::string json_path;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--sizes") {
      sizes.clear();
      for (const std::string& s : terse::bench::split_list(argv[i + 1]))
        sizes.push_back(parse_size(s));
    } else if (a == "--reps") {
      reps = std::atoi(argv[i + 1]);
    } else if (a == "--threads") {
      threads = std::atoi(argv[i + 1]);
    } else if (a == "--variants") {
      variants = terse::bench::split_list(argv[i + 1]);
      for (const std::string& v : variants) {
        if (v != "deferred" && v != "overlap" && v != "pairwise") {
          std::fprintf(stderr,
                       "--variants: unknown variant '%s'; use deferred, overlap, pairwise\n",
                       v.c_str());
          return 2;
        }
      }
      if (variants.empty()) {
        std::fprintf(stderr,
                     "--variants is empty; name at least one of deferred, overlap, pairwise\n");
        return 2;
      }
    } else if (a == "--json") {
      json_path = argv[i + 1];
    } else {
      std::fprintf(stderr,
                   "unknown option %s; use --sizes, --reps, --threads, --variants or --json\n",
                   a.c_str());
      return 2;
    }
  }
  if (reps < 1) {
    std::fprintf(stderr, "--reps must be >= 1, got %d\n", reps);
    return 2;
  }
  if (threads < 1) {
    std::fprintf(stderr, "--threads must be >= 1, got %d\n", threads);
    return 2;
  }
  for (int64_t n : sizes) {
    if (n <= 0) {
      std::fprintf(stderr, "--sizes must be positive element counts, got %lld\n",
                   static_cast<long long>(n));
      return 2;
    }
  }
  auto comm = terse::make_communicator(terse::launched_under_mpi() ? "mpi" : "local");
  Communicator& c = *comm;
  const int w = c.size();
  const bool root = c.rank() == 0;
  nlohmann::json rows = nlohmann::json::array();
  if (root) {
    std::printf(
        "OneBitAllReduce vs dense f32 all_reduce, %d ranks (%s), %d thread(s) per rank, median "
        "of %d calls\n",
        w, c.backend(), threads, reps);
    std::printf("%8s %10s %10s %9s %12s %12s %14s %14s %14s %8s\n", "numel", "dense ms", "1-bit ms",
                "speedup", "dense cpu", "1-bit cpu", "dense B/rank", "1-bit B/rank",
                "1-bit payload", "bytes x");
  }
  for (int64_t n : sizes) {
    std::vector<float> grad(static_cast<size_t>(n)), work(grad.size());
    terse::PhiloxStream rng(42, static_cast<uint64_t>(c.rank()));
    for (float& g : grad) g = 2.0f * rng.uniform() - 1.0f;
    // One algorithm per variant, each with its own errors.
    std::vector<std::unique_ptr<terse::OneBitAllReduce>> algos;
    for (const std::string& v : variants) {
      terse::OneBitAllReduce::Options options;
      options.threads = threads;
      options.pairwise = v == "pairwise";
      options.defer_worker_error = v == "deferred";
      algos.push_back(std::make_unique<terse::OneBitAllReduce>(c, n, options));
    }
    terse::OneBitAllReduceReport rep;
    std::vector<std::vector<terse::OneBitAllReduceReport>> reports(variants.size());
    std::vector<Timing> timings;
    // Every call starts from the same data; the copy is outside the timing.
    const auto reset = [&] { work = grad; };
    const Timing dense = time_collective(
        c, reps, reset, [&] { c.all_reduce(TensorView::of(work.data(), n), ReduceOp::kSum); });
    for (size_t k = 0; k < variants.size(); ++k) {
      timings.push_back(time_collective(c, reps, reset, [&] {
        reports[k].push_back(algos[k]->all_reduce(TensorView::of(work.data(), n)));
      }));
    }
    rep = reports[0].back();
    const Timing& onebit = timings[0];
    if (root) {
      for (size_t k = 0; k < variants.size(); ++k) {
        print_split(("1-bit " + variants[k]).c_str(), timings[k], reports[k]);
      }
      const double bytes_x =
          rep.bytes_sent > 0 ? static_cast<double>(rep.bytes_dense) / rep.bytes_sent : 0.0;
      std::printf("%8s %10.2f %10.2f %8.2fx %12.2f %12.2f %14llu %14llu %14llu %7.1fx\n",
                  size_name(n).c_str(), dense.wall_s * 1e3, onebit.wall_s * 1e3,
                  dense.wall_s / onebit.wall_s, dense.cpu_s * 1e3, onebit.cpu_s * 1e3,
                  static_cast<unsigned long long>(rep.bytes_dense),
                  static_cast<unsigned long long>(rep.bytes_sent),
                  static_cast<unsigned long long>(rep.payload_bytes), bytes_x);
      std::fflush(stdout);
      nlohmann::json split = nlohmann::json::object();
      nlohmann::json wall = nlohmann::json::object();
      for (size_t k = 0; k < variants.size(); ++k) {
        split[variants[k]] = split_ms(reports[k]);
        wall[variants[k]] = timings[k].wall_s * 1e3;
      }
      rows.push_back({{"numel", n},
                      {"ranks", w},
                      {"threads", threads},
                      {"dense_ms", dense.wall_s * 1e3},
                      {"onebit_ms", onebit.wall_s * 1e3},
                      {"dense_cpu_ms", dense.cpu_s * 1e3},
                      {"onebit_cpu_ms", onebit.cpu_s * 1e3},
                      {"bytes_dense", rep.bytes_dense},
                      {"bytes_onebit", rep.bytes_sent},
                      {"payload_onebit", rep.payload_bytes},
                      {"variant_ms", wall},
                      {"split_ms", split}});
    }
  }
  if (root && !json_path.empty()) {
    std::ofstream f(json_path);
    f << nlohmann::json{{"benchmark", "one_bit_all_reduce"}, {"reps", reps}, {"rows", rows}}.dump(2)
      << "\n";
  }
  comm.reset();
  return 0;
}

// powersgd_bench: PowerSGD's CPU passes on one rank (a local communicator of one), by thread
// count, against a copy of the same matrices on as many threads in the same run. The passes
// read and write M and e in three sweeps (P = (M + e) Q; M += e with Q = M^T P; e = M - P Q^T,
// M = P Q^T) after a finiteness check of M: 36 bytes per element, the figure the GB/s column
// divides by. Default shapes: wide-mlp's weight matrices (issue 5's workload), rank 4.
// Usage: powersgd_bench [--shapes 2048x784,2048x2048,10x2048] [--rank 4] [--threads 1,2,4]
//                       [--reps 20] [--json FILE]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "terse/comm/algorithms/power_sgd.h"
#include "terse/comm/local_communicator.h"
#include "terse/core/philox.h"
#include "terse/kernels/cpu_threads.h"

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "powersgd_bench: %s\nusage: powersgd_bench [--shapes RxC,...] [--rank R] "
               "[--threads T,...] [--reps N] [--json FILE]\n",
               why.c_str());
  std::exit(2);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, sep);) out.push_back(x);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace terse;
  std::string shapes_arg = "2048x784,2048x2048,10x2048", threads_arg = "1,2,4", json_path;
  int rank = 4, reps = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage("missing value after " + a);
    const std::string v = argv[++i];
    if (a == "--shapes") {
      shapes_arg = v;
    } else if (a == "--rank") {
      rank = std::atoi(v.c_str());
    } else if (a == "--threads") {
      threads_arg = v;
    } else if (a == "--reps") {
      reps = std::atoi(v.c_str());
    } else if (a == "--json") {
      json_path = v;
    } else {
      usage("unknown flag " + a);
    }
  }
  if (rank < 1 || reps < 1) usage("--rank and --reps must be >= 1");
  std::vector<std::pair<int64_t, int64_t>> shapes;
  int64_t numel = 0;
  for (const std::string& s : split(shapes_arg, ',')) {
    const auto rc = split(s, 'x');
    if (rc.size() != 2) usage("bad shape '" + s + "' (want ROWSxCOLS)");
    shapes.emplace_back(std::atoll(rc[0].c_str()), std::atoll(rc[1].c_str()));
    if (shapes.back().first < 1 || shapes.back().second < 1) usage("bad shape '" + s + "'");
    numel += shapes.back().first * shapes.back().second;
  }
  std::vector<int> thread_counts;
  for (const std::string& t : split(threads_arg, ',')) {
    thread_counts.push_back(std::atoi(t.c_str()));
    if (thread_counts.back() < 1) usage("bad thread count '" + t + "'");
  }

  // One gradient per matrix, drawn once; each timed call starts from a copy of it (the copy is
  // not timed), so every call does the same work.
  std::vector<std::vector<float>> source, grads;
  PhiloxStream rng(3, 4);
  for (const auto& [rows, cols] : shapes) {
    std::vector<float> g(static_cast<size_t>(rows * cols));
    for (float& x : g) x = 2e-3f * rng.uniform() - 1e-3f;
    source.push_back(g);
    grads.push_back(g);
  }
  std::vector<MatrixView> views;
  for (size_t i = 0; i < shapes.size(); ++i) {
    views.push_back({grads[i].data(), shapes[i].first, shapes[i].second});
  }
  auto comms = make_local_communicators(1);
  std::vector<float> copy_dst(static_cast<size_t>(numel));
  std::vector<float> copy_src(static_cast<size_t>(numel), 1.0f);

  std::printf("PowerSGD rank %d on %s (%lld elements), %d reps; threads: %s\n", rank,
              shapes_arg.c_str(), static_cast<long long>(numel), reps, threads_arg.c_str());
  std::printf("%8s %12s %12s %10s %12s %10s\n", "threads", "run ms", "compress ms", "GB/s",
              "copy GB/s", "of copy");
  nlohmann::json rows = nlohmann::json::array();
  for (const int threads : thread_counts) {
    set_cpu_threads(threads);
    PowerSgd::Options opt;
    opt.rank = rank;
    opt.start_iter = 0;
    PowerSgd algo(*comms[0], opt);
    std::vector<double> run_s, compress_s, copy_s;
    for (int r = -2; r < reps; ++r) {  // two warm-up calls: the error and Q buffers get allocated
      for (size_t i = 0; i < grads.size(); ++i) grads[i] = source[i];
      const auto t0 = std::chrono::steady_clock::now();
      const PowerSgdReport rep = algo.run(views, r + 2);
      const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      // The copy reference: the same bytes read and written once, on the same threads.
      const auto c0 = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(static) num_threads(threads)
      for (int64_t b = 0; b < (numel + 4095) / 4096; ++b) {
        const int64_t begin = b * 4096, len = std::min<int64_t>(4096, numel - begin);
        std::memcpy(copy_dst.data() + begin, copy_src.data() + begin,
                    sizeof(float) * static_cast<size_t>(len));
      }
      const double c = std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count();
      if (r < 0) continue;
      run_s.push_back(t);
      compress_s.push_back(rep.compress_s);
      copy_s.push_back(c);
    }
    const double run = median(run_s), comp = median(compress_s), copy = median(copy_s);
    const double gbps = 36.0 * static_cast<double>(numel) / run / 1e9;
    const double copy_gbps = 8.0 * static_cast<double>(numel) / copy / 1e9;
    std::printf("%8d %12.3f %12.3f %10.2f %12.2f %9.1f%%\n", threads, run * 1e3, comp * 1e3, gbps,
                copy_gbps, 100.0 * gbps / copy_gbps);
    rows.push_back({{"threads", threads},
                    {"run_ms", run * 1e3},
                    {"compress_ms", comp * 1e3},
                    {"gbps", gbps},
                    {"copy_gbps", copy_gbps}});
  }
  set_cpu_threads(0);
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << nlohmann::json{{"shapes", shapes_arg}, {"rank", rank}, {"reps", reps}, {"rows", rows}}
               .dump(2)
        << "\n";
    if (!out) {
      std::fprintf(stderr, "powersgd_bench: cannot write %s\n", json_path.c_str());
      return 1;
    }
  }
  return 0;
}

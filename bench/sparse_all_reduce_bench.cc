// sparse_all_reduce_bench: SparseAllReduce (Ok-Topk) against SparseAllGather (sparse path
// forced) and a dense f32 all_reduce of the same vector, per rank: time per call and bytes.
// Run under MPI:
//   mpiexec -n 4 sparse_all_reduce_bench [--numel 6553600] [--densities 0.001,0.01] [--reps R]
//                                        [--quota waterfill|fixed] [--json FILE]
// --quota picks SparseAllReduce's Options::quota (default waterfill); with fixed, the table also
// shows fixed_bytes_per_rank (the model) and whether k >= fixed_min_budget(N).
// Each rank holds k = ceil(density * numel) pairs at random indices (its own Philox stream,
// new ones every call) and the budget is k, so count <= k and Ok-Topk's bound 2 k 8 applies.
// Each timed call starts after a barrier; its time is the slowest rank's, the table shows the
// median over R calls after one warm-up call; bytes are the largest over ranks. SparseAllReduce
// keeps its rebalanced boundaries from call to call, as in training.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "terse/comm/algorithms/sparse_all_gather.h"
#include "terse/comm/algorithms/sparse_all_reduce.h"
#include "terse/comm/communicator.h"
#include "terse/core/philox.h"

namespace {

using terse::Communicator;
using terse::ReduceOp;
using terse::TensorView;

struct Pairs {
  std::vector<int32_t> idx;
  std::vector<float> val;
};

// k distinct sorted indices of [0, numel): Floyd's sampling over a Philox stream.
Pairs random_pairs(int64_t numel, int64_t k, uint64_t seed, int rank) {
  terse::PhiloxStream rng(seed, static_cast<uint64_t>(rank));
  std::vector<uint8_t> taken(static_cast<size_t>(numel), 0);
  Pairs p;
  for (int64_t j = numel - k; j < numel; ++j) {
    int64_t t = static_cast<int64_t>(rng.below(static_cast<uint64_t>(j) + 1));
    if (taken[static_cast<size_t>(t)]) t = j;
    taken[static_cast<size_t>(t)] = 1;
  }
  for (int64_t i = 0; i < numel; ++i) {
    if (!taken[static_cast<size_t>(i)]) continue;
    p.idx.push_back(static_cast<int32_t>(i));
    p.val.push_back(rng.uniform() - 0.5f);
  }
  return p;
}

double max_over_ranks(Communicator& c, double x) {
  c.all_reduce(TensorView::of(&x, 1), ReduceOp::kMax);
  return x;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median over `reps` calls (after one warm-up) of the slowest rank's time of op(call).
double time_calls(Communicator& c, int reps, const std::function<void(int)>& op) {
  std::vector<double> t;
  for (int call = 0; call <= reps; ++call) {
    c.barrier();
    const auto t0 = std::chrono::steady_clock::now();
    op(call);
    const double s = max_over_ranks(
        c, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (call > 0) t.push_back(s);
  }
  return median(t);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t numel = 6553600;
  std::vector<double> densities = {0.001, 0.01};
  int reps = 5;
  std::string json_path;
  std::string quota = "waterfill";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* next = i + 1 < argc ? argv[i + 1] : nullptr;
    if (a == "--numel" && next) {
      numel = std::atoll(next);
      ++i;
    } else if (a == "--densities" && next) {
      densities.clear();
      std::stringstream ss(next);
      std::string item;
      while (std::getline(ss, item, ',')) densities.push_back(std::atof(item.c_str()));
      ++i;
    } else if (a == "--reps" && next) {
      reps = std::atoi(next);
      ++i;
    } else if (a == "--quota" && next &&
               (std::string(next) == "fixed" || std::string(next) == "waterfill")) {
      quota = next;
      ++i;
    } else if (a == "--json" && next) {
      json_path = next;
      ++i;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--numel N] [--densities d1,d2] [--reps R] "
                   "[--quota waterfill|fixed] [--json FILE]\n"
                   "unknown or incomplete argument: %s\n",
                   argv[0], a.c_str());
      return 2;
    }
  }
  if (numel < 1 || numel > (int64_t{1} << 31) || reps < 1) {
    std::fprintf(stderr, "need 1 <= numel <= 2^31 and reps >= 1; got numel %lld, reps %d\n",
                 static_cast<long long>(numel), reps);
    return 2;
  }
  auto comm = terse::make_communicator("mpi");
  Communicator& c = *comm;
  const int n = c.size();
  std::vector<float> out(static_cast<size_t>(numel));
  nlohmann::json rows = nlohmann::json::array();
  if (c.rank() == 0) {
    std::printf(
        "N=%d numel=%lld reps=%d quota=%s (median of the slowest rank; bytes: max over ranks)\n", n,
        static_cast<long long>(numel), reps, quota.c_str());
    std::printf("%-8s %9s | %12s %9s | %12s %9s %8s | %12s %9s\n", "density", "k", "gather B",
                "gather ms", "ok-topk B", "ok-topk ms", "dropped", "dense B", "dense ms");
  }
  for (const double d : densities) {
    const int64_t k = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(d * numel)));
    std::vector<Pairs> inputs;
    for (int call = 0; call <= reps; ++call)
      inputs.push_back(random_pairs(numel, k, 11 + call, c.rank()));
    auto view = [&](int call) {
      const Pairs& p = inputs[static_cast<size_t>(call)];
      return terse::SparseVector{p.idx.data(), p.val.data(), static_cast<int64_t>(p.idx.size())};
    };
    terse::SparseAllGather::Options go;
    go.allow_dense_fallback = false;
    terse::SparseAllGather gather(c, go);
    terse::SparseAllReduce::Options oo;
    oo.quota = quota == "fixed" ? terse::SparseAllReduce::Quota::kFixed
                                : terse::SparseAllReduce::Quota::kWaterFill;
    terse::SparseAllReduce okt(c, oo);
    uint64_t gather_bytes = 0, okt_bytes = 0, okt_control = 0, dense_bytes = 0;
    double dropped = 0;
    const double tg = time_calls(c, reps, [&](int call) {
      gather_bytes = gather.run(view(call), TensorView::of(out.data(), numel)).bytes_sent;
    });
    const double to = time_calls(c, reps, [&](int call) {
      const auto r = okt.run(view(call), k, TensorView::of(out.data(), numel));
      okt_bytes = r.bytes_sent;
      okt_control = r.bytes_control;
      dense_bytes = r.bytes_dense;
      dropped = static_cast<double>(r.dropped) / static_cast<double>(k);
    });
    const double td = time_calls(
        c, reps, [&](int) { c.all_reduce(TensorView::of(out.data(), numel), ReduceOp::kSum); });
    gather_bytes = static_cast<uint64_t>(max_over_ranks(c, static_cast<double>(gather_bytes)));
    okt_bytes = static_cast<uint64_t>(max_over_ranks(c, static_cast<double>(okt_bytes)));
    okt_control = static_cast<uint64_t>(max_over_ranks(c, static_cast<double>(okt_control)));
    dropped = max_over_ranks(c, dropped);
    if (c.rank() == 0) {
      std::printf("%-8g %9lld | %12llu %9.2f | %12llu %9.2f %7.0f%% | %12llu %9.2f\n", d,
                  static_cast<long long>(k), static_cast<unsigned long long>(gather_bytes),
                  tg * 1e3, static_cast<unsigned long long>(okt_bytes), to * 1e3, dropped * 100,
                  static_cast<unsigned long long>(dense_bytes), td * 1e3);
      const uint64_t bound = 2u * 8u * static_cast<uint64_t>(k);
      std::printf("  ok-topk bytes per rank %llu (control %llu) vs 2 k 8 = %llu: %s",
                  static_cast<unsigned long long>(okt_bytes),
                  static_cast<unsigned long long>(okt_control),
                  static_cast<unsigned long long>(bound), okt_bytes <= bound ? "within" : "ABOVE");
      if (quota == "fixed") {
        std::printf(
            "; model fixed_bytes_per_rank %llu, k >= fixed_min_budget(N) = %lld: %s",
            static_cast<unsigned long long>(terse::SparseAllReduce::fixed_bytes_per_rank(k, n)),
            static_cast<long long>(terse::SparseAllReduce::fixed_min_budget(n)),
            k >= terse::SparseAllReduce::fixed_min_budget(n) ? "yes" : "no");
      }
      std::printf("\n");
      rows.push_back({{"world", n},
                      {"numel", numel},
                      {"density", d},
                      {"k", k},
                      {"gather_bytes_sent", gather_bytes},
                      {"gather_ms", tg * 1e3},
                      {"quota", quota},
                      {"ok_topk_bytes_sent", okt_bytes},
                      {"ok_topk_bytes_control", okt_control},
                      {"ok_topk_ms", to * 1e3},
                      {"ok_topk_max_dropped_fraction", dropped},
                      {"dense_bytes", dense_bytes},
                      {"dense_ms", td * 1e3}});
    }
  }
  if (c.rank() == 0 && !json_path.empty()) {
    std::ofstream(json_path) << rows.dump(2) << "\n";
  }
  comm.reset();
  return 0;
}

// collectives_bench: the time of each collective algorithm terse uses, per call, at the sizes
// a training step hands them: the calibration points of the alpha-beta cost model
// (scripts/cost_model.py, docs/results.md "Slow network"). Run under MPI, e.g. on shaped links:
//   bench/shaped-net/run.sh 8 1gbit -- build/release/bench/collectives_bench
//       --numel 5800000 --densities 0.001,0.01 --dense 256,64k,1M --reps 5 --json out.json
// Algorithms: all_reduce (dense f32, the communicator's MPI_Iallreduce), sparse_all_gather and
// sparse_all_reduce (water-filled and fixed quotas) of k = density * numel random pairs per rank
// (budget k), one_bit_all_reduce of numel on --threads threads. Each timed call starts after a
// barrier; its time is the slowest rank's, the median over --reps calls after one warm-up.
// bytes_sent is the largest per-rank count any rank reports.

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "collective_timing.h"
#include "terse/comm/algorithms/one_bit_all_reduce.h"
#include "terse/comm/algorithms/sparse_all_gather.h"
#include "terse/comm/algorithms/sparse_all_reduce.h"
#include "terse/comm/communicator.h"
#include "terse/core/philox.h"

namespace {

using terse::Communicator;
using terse::ReduceOp;
using terse::TensorView;
using terse::bench::parse_size;
using terse::bench::time_collective;
using terse::bench::Timing;

struct Args {
  int64_t numel = 5800000;  // the wide-mlp's 5.8 M parameters
  std::vector<double> densities = {0.001, 0.01};
  std::vector<int64_t> dense = {256, 64 << 10, 1 << 20};
  int reps = 5;
  int threads = 1;  // OneBitAllReduce::Options::threads
  std::string json_path;
};

int usage(const std::string& why) {
  std::fprintf(stderr,
               "collectives_bench: %s\nusage: collectives_bench [--numel N] [--densities "
               "D,D] [--dense N,N] [--reps R] [--threads T] [--json FILE]\n",
               why.c_str());
  return 2;
}

// Each index kept with probability `density`: sorted, unique, about density * numel of them.
void random_pairs(int rank, int64_t numel, double density, std::vector<int32_t>& idx,
                  std::vector<float>& val) {
  terse::PhiloxStream rng(1234, static_cast<uint64_t>(rank));
  const uint32_t cut = static_cast<uint32_t>(density * 4294967295.0);
  idx.clear();
  val.clear();
  for (int64_t i = 0; i < numel; ++i) {
    if (rng.next_u32() > cut) continue;
    idx.push_back(static_cast<int32_t>(i));
    val.push_back(2.0f * rng.uniform() - 1.0f);
  }
}

uint64_t max_over_ranks(Communicator& c, uint64_t v) {
  double d = static_cast<double>(v);
  c.all_reduce(TensorView::of(&d, 1), ReduceOp::kMax);
  return static_cast<uint64_t>(d);
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i += 2) {
    const std::string k = argv[i];
    if (i + 1 >= argc) return usage("option " + k + " needs a value");
    const std::string v = argv[i + 1];
    if (k == "--numel") {
      a.numel = parse_size(v);
    } else if (k == "--densities") {
      a.densities.clear();
      for (const std::string& s : terse::bench::split_list(v))
        a.densities.push_back(std::atof(s.c_str()));
    } else if (k == "--dense") {
      a.dense.clear();
      for (const std::string& s : terse::bench::split_list(v)) a.dense.push_back(parse_size(s));
    } else if (k == "--reps") {
      a.reps = std::atoi(v.c_str());
    } else if (k == "--threads") {
      a.threads = std::atoi(v.c_str());
    } else if (k == "--json") {
      a.json_path = v;
    } else {
      return usage("unknown option " + k);
    }
  }
  if (a.reps < 1) return usage("--reps must be >= 1, got " + std::to_string(a.reps));
  if (a.threads < 1) return usage("--threads must be >= 1, got " + std::to_string(a.threads));
  if (a.numel <= 0 || a.numel >= (int64_t{1} << 31))
    return usage("--numel must be in [1, 2^31), got " + std::to_string(a.numel));
  for (double d : a.densities)
    if (!(d > 0 && d <= 1)) return usage("--densities must be in (0, 1], got " + std::to_string(d));
  for (int64_t n : a.dense)
    if (n <= 0) return usage("--dense sizes must be positive, got " + std::to_string(n));

  auto comm = terse::make_communicator(terse::launched_under_mpi() ? "mpi" : "local");
  Communicator& c = *comm;
  const int w = c.size();
  const bool root = c.rank() == 0;
  nlohmann::json rows = nlohmann::json::array();
  auto emit = [&](const char* algo, int64_t numel, double density, int64_t k, const Timing& t,
                  uint64_t bytes) {
    bytes = max_over_ranks(c, bytes);
    if (!root) return;
    std::printf("%-20s %9lld %8.4f %9lld %10.3f ms %12llu B/rank\n", algo,
                static_cast<long long>(numel), density, static_cast<long long>(k), t.wall_s * 1e3,
                static_cast<unsigned long long>(bytes));
    std::fflush(stdout);
    rows.push_back({{"algo", algo},
                    {"ranks", w},
                    {"numel", numel},
                    {"density", density},
                    {"k", k},
                    {"ms", t.wall_s * 1e3},
                    {"cpu_ms", t.cpu_s * 1e3},
                    {"bytes_sent", bytes}});
  };
  if (root) {
    std::printf("collectives on %d ranks (%s), median of %d calls\n", w, c.backend(), a.reps);
  }

  std::vector<float> work;
  for (int64_t n : a.dense) {
    work.assign(static_cast<size_t>(n), 1.0f);
    const Timing t = time_collective(
        c, a.reps, [] {}, [&] { c.all_reduce(TensorView::of(work.data(), n), ReduceOp::kSum); });
    emit("all_reduce", n, 1.0, n, t, terse::ring_all_reduce_bytes(4 * static_cast<uint64_t>(n), w));
  }

  std::vector<float> out(static_cast<size_t>(a.numel));
  for (double d : a.densities) {
    std::vector<int32_t> idx;
    std::vector<float> val;
    random_pairs(c.rank(), a.numel, d, idx, val);
    const terse::SparseVector mine{idx.data(), val.data(), static_cast<int64_t>(idx.size())};
    const int64_t k = static_cast<int64_t>(d * static_cast<double>(a.numel));
    terse::SparseAllGather gather(c, {terse::SparseReduction::kAverage, false});
    uint64_t bytes = 0;
    Timing t = time_collective(
        c, a.reps, [] {},
        [&] { bytes = gather.run(mine, TensorView::of(out.data(), a.numel)).bytes_sent; });
    emit("sparse_all_gather", a.numel, d, k, t, bytes);
    terse::SparseAllReduce reduce(c);
    t = time_collective(
        c, a.reps, [] {},
        [&] { bytes = reduce.run(mine, k, TensorView::of(out.data(), a.numel)).bytes_sent; });
    emit("sparse_all_reduce", a.numel, d, k, t, bytes);
    terse::SparseAllReduce fixed(
        c, {terse::SparseReduction::kAverage, terse::SparseAllReduce::Quota::kFixed});
    t = time_collective(
        c, a.reps, [] {},
        [&] { bytes = fixed.run(mine, k, TensorView::of(out.data(), a.numel)).bytes_sent; });
    emit("sparse_all_reduce_fixed", a.numel, d, k, t, bytes);
  }

  {
    std::vector<float> grad(static_cast<size_t>(a.numel));
    terse::PhiloxStream rng(42, static_cast<uint64_t>(c.rank()));
    for (float& g : grad) g = 2.0f * rng.uniform() - 1.0f;
    terse::OneBitAllReduce algo(c, a.numel, terse::OneBitAllReduce::Options{a.threads});
    uint64_t bytes = 0;
    const Timing t = time_collective(
        c, a.reps, [&] { work = grad; },
        [&] { bytes = algo.all_reduce(TensorView::of(work.data(), a.numel)).bytes_sent; });
    emit("one_bit_all_reduce", a.numel, 1.0, a.numel, t, bytes);
  }

  if (root && !a.json_path.empty()) {
    std::ofstream f(a.json_path);
    f << nlohmann::json{{"benchmark", "collectives"},
                        {"ranks", w},
                        {"reps", a.reps},
                        {"rows", rows}}
             .dump(2)
      << "\n";
  }
  comm.reset();
  return 0;
}

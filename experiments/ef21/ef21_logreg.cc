// ef21_logreg: the EF21 / EF21-W logistic-regression experiment (docs/ef21.md) on a heterogeneous
// two-class Fashion-MNIST split. For every method (GD, Top-k, EF14, EF21, EF21-W), every k and
// every step-size multiplier it writes a trajectory CSV, and a summary.json with the problem's
// L_i, L, L_QM, L_AM, the theory steps and each run's outcome (best multiplier per method and k).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ef21_simulation.h"
#include "logreg_problem.h"
#include "terse/compress/error_feedback.h"
#include "terse/core/check.h"
#include "terse/core/error.h"

namespace terse {
namespace {

struct Args {
  FashionSplitOptions split;
  std::string out = "ef21_out";
  std::vector<int64_t> ks = {1, 2, 4};
  std::vector<double> multipliers = {1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144};
  std::vector<std::string> methods = {"gd", "topk", "ef14", "ef21", "ef21w"};
  int64_t iterations = 6000;  // for k = 1; k uses iterations / k
  int64_t gd_iterations = 1000;
  double tol = 1e-9;
  uint64_t seed = 1;
  bool all_ranks_decode = true;
};

const char* kUsage =
    "usage: ef21_logreg [--out DIR] [--data DIR] [--workers N] [--per-worker M]\n"
    "  [--classes NEG,POS] [--scale-max S] [--no-pool] [--lambda L] [--ks 1,2,4]\n"
    "  [--multipliers 1,4,16,...] [--methods gd,topk,ef14,ef21,ef21w] [--iterations T]\n"
    "  [--gd-iterations T] [--tol EPS] [--seed S] [--rank0-decode-only]\n";

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

double to_double(const std::string& flag, const std::string& v) {
  size_t used = 0;
  double x = 0;
  try {
    x = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  TERSE_CHECK(used == v.size() && !v.empty(), InvalidArgument, "ef21_logreg: ", flag,
              " expects a number but got '", v, "'");
  return x;
}

int64_t to_int(const std::string& flag, const std::string& v) {
  const double x = to_double(flag, v);
  TERSE_CHECK(x == std::floor(x) && std::fabs(x) < 9e15, InvalidArgument, "ef21_logreg: ", flag,
              " expects an integer but got '", v, "'");
  return static_cast<int64_t>(x);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (flag == "--no-pool") {
      a.split.pool = false;
      continue;
    }
    if (flag == "--rank0-decode-only") {
      a.all_ranks_decode = false;
      continue;
    }
    TERSE_CHECK(i + 1 < argc, InvalidArgument, "ef21_logreg: ", flag, " needs a value\n", kUsage);
    const std::string v = argv[++i];
    if (flag == "--out") {
      a.out = v;
    } else if (flag == "--data") {
      a.split.dir = v;
    } else if (flag == "--workers") {
      a.split.workers = static_cast<int>(to_int(flag, v));
    } else if (flag == "--per-worker") {
      a.split.per_worker = to_int(flag, v);
    } else if (flag == "--classes") {
      const auto c = split_list(v);
      TERSE_CHECK(c.size() == 2, InvalidArgument,
                  "ef21_logreg: --classes expects NEG,POS but got '", v, "'");
      a.split.class_neg = static_cast<int>(to_int(flag, c[0]));
      a.split.class_pos = static_cast<int>(to_int(flag, c[1]));
    } else if (flag == "--scale-max") {
      a.split.scale_max = to_double(flag, v);
    } else if (flag == "--lambda") {
      a.split.lambda = to_double(flag, v);
    } else if (flag == "--ks") {
      a.ks.clear();
      for (const auto& s : split_list(v)) a.ks.push_back(to_int(flag, s));
    } else if (flag == "--multipliers") {
      a.multipliers.clear();
      for (const auto& s : split_list(v)) a.multipliers.push_back(to_double(flag, s));
    } else if (flag == "--methods") {
      a.methods = split_list(v);
    } else if (flag == "--iterations") {
      a.iterations = to_int(flag, v);
    } else if (flag == "--gd-iterations") {
      a.gd_iterations = to_int(flag, v);
    } else if (flag == "--tol") {
      a.tol = to_double(flag, v);
    } else if (flag == "--seed") {
      a.seed = static_cast<uint64_t>(to_int(flag, v));
    } else {
      TERSE_THROW(InvalidArgument, "ef21_logreg: unknown flag '", flag, "'\n", kUsage);
    }
  }
  TERSE_CHECK(!a.ks.empty() && !a.multipliers.empty() && !a.methods.empty(), InvalidArgument,
              "ef21_logreg: --ks, --multipliers and --methods must not be empty");
  for (double m : a.multipliers)
    TERSE_CHECK(std::isfinite(m) && m > 0, InvalidArgument, "ef21_logreg: multiplier ", m,
                " must be finite and > 0");
  TERSE_CHECK(a.iterations >= 1 && a.gd_iterations >= 1, InvalidArgument,
              "ef21_logreg: --iterations ", a.iterations, " and --gd-iterations ", a.gd_iterations,
              " must be >= 1");
  return a;
}

struct Outcome {
  std::string method;
  int64_t k = 0;
  double multiplier = 0;
  double gamma = 0;
  RunResult result;
};

// Better = reached the tolerance with fewer bits, else lower final ||grad f||^2; diverged last.
bool better(const RunResult& a, const RunResult& b) {
  if (a.diverged != b.diverged) return !a.diverged;
  if (a.reached_tol != b.reached_tol) return a.reached_tol;
  if (a.reached_tol) return a.bits_at_end < b.bits_at_end;
  return a.final_grad_norm_sq < b.final_grad_norm_sq;
}

void write_csv(const std::string& path, const std::vector<const Outcome*>& runs) {
  std::ofstream os(path);
  TERSE_CHECK(os.good(), InvalidArgument, "ef21_logreg: cannot write ", path,
              "; check that --out is a writable directory");
  os << "multiplier,gamma,iteration,bits_per_worker,bits_ideal,grad_norm_sq,f\n";
  os.precision(10);
  for (const Outcome* o : runs)
    for (const TrajectoryPoint& p : o->result.points)
      os << o->multiplier << ',' << o->gamma << ',' << p.iteration << ',' << p.bits_measured << ','
         << p.bits_ideal << ',' << p.grad_norm_sq << ',' << p.f << '\n';
}

int run(int argc, char** argv) {
  const Args args = parse(argc, argv);
  const auto start = std::chrono::steady_clock::now();
  const LogRegProblem problem = make_fashion_problem(args.split);
  const int n = problem.num_workers();
  const int64_t d = problem.dim();
  std::vector<double> li(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) li[static_cast<size_t>(i)] = problem.smoothness(i);
  const double l = problem.global_smoothness();
  double sum = 0, sum_sq = 0;
  for (double v : li) {
    sum += v;
    sum_sq += v * v;
  }
  const double l_am = sum / n, l_qm = std::sqrt(sum_sq / n);
  const auto [lmin, lmax] = std::minmax_element(li.begin(), li.end());
  std::printf("problem: n=%d workers, m_i=%lld, d=%lld, lambda=%g, classes %d(-1) vs %d(+1)\n", n,
              static_cast<long long>(args.split.per_worker), static_cast<long long>(d),
              args.split.lambda, args.split.class_neg, args.split.class_pos);
  std::printf(
      "smoothness: L=%.4f  L_AM=%.4f  L_QM=%.4f  L_QM/L_AM=%.3f  L_i in [%.4f, %.4f] "
      "(max/min %.1f)\n",
      l, l_am, l_qm, l_qm / l_am, *lmin, *lmax, *lmax / *lmin);

  std::mt19937_64 rng(args.seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> x0(static_cast<size_t>(d));
  for (double& v : x0) v = normal(rng);

  nlohmann::json summary;
  summary["problem"] = {{"workers", n},
                        {"per_worker", args.split.per_worker},
                        {"dim", d},
                        {"lambda", args.split.lambda},
                        {"class_neg", args.split.class_neg},
                        {"class_pos", args.split.class_pos},
                        {"scale_max", args.split.scale_max},
                        {"pool", args.split.pool},
                        {"seed", args.seed},
                        {"tol", args.tol},
                        {"L", l},
                        {"L_AM", l_am},
                        {"L_QM", l_qm},
                        {"L_i", li}};
  nlohmann::json workers = nlohmann::json::array();
  for (int i = 0; i < n; ++i)
    workers.push_back({{"positives", problem.worker(i).positives},
                       {"feature_scale", problem.worker(i).feature_scale},
                       {"L_i", li[static_cast<size_t>(i)]}});
  summary["workers"] = workers;
  summary["iterations_k1"] = args.iterations;
  summary["gd_iterations"] = args.gd_iterations;
  summary["multipliers"] = args.multipliers;
  summary["ks"] = args.ks;
  summary["bits_note"] =
      "bits_per_worker = 8 x measured payload bytes (32-byte header included), mean over workers";

  // Base steps: GD 1/L; EF21-W the theorem's step with L_AM; Top-k, EF14, EF21 the EF21 step
  // with L_QM (the EF21 papers tune EF14 over multiples of the same base).
  auto base_step = [&](const std::string& method, int64_t k) {
    if (method == "gd") return 1.0 / l;
    const double alpha = static_cast<double>(k) / static_cast<double>(d);
    return ef21_step_size(method == "ef21w" ? ErrorFeedbackKind::kEF21W : ErrorFeedbackKind::kEF21,
                          alpha, l, li);
  };

  std::vector<Outcome> outcomes;
  auto launch = [&](const std::string& method, int64_t k, double mult, double gamma,
                    int64_t iters) {
    RunConfig cfg;
    cfg.method = method;
    cfg.k = k;
    cfg.gamma = gamma;
    cfg.iterations = iters;
    cfg.tol = args.tol;
    cfg.log_every = std::max<int64_t>(1, iters / 1000);
    cfg.all_ranks_decode = args.all_ranks_decode;
    cfg.smoothness = li;
    Outcome o{method, k, mult, gamma, run_method(problem, cfg, x0)};
    std::printf(
        "%-6s k=%lld mult=%-6g gamma=%.4e iters=%-6lld bits/worker=%.4g  |grad|^2=%.3e "
        "f=%.6f%s%s\n",
        method.c_str(), static_cast<long long>(k), mult, gamma,
        static_cast<long long>(o.result.iterations_done), o.result.bits_at_end,
        o.result.final_grad_norm_sq, o.result.final_f, o.result.diverged ? " DIVERGED" : "",
        o.result.reached_tol ? " reached tol" : "");
    std::fflush(stdout);
    outcomes.push_back(std::move(o));
  };

  nlohmann::json steps = nlohmann::json::object();
  for (const std::string& method : args.methods) {
    if (method == "gd") {
      for (double mult : args.multipliers)
        launch("gd", 0, mult, mult * base_step("gd", 0), args.gd_iterations);
      steps["gd"] = base_step("gd", 0);
      continue;
    }
    for (int64_t k : args.ks) {
      const int64_t iters = std::max<int64_t>(1, args.iterations / k);
      steps[method + "_k" + std::to_string(k)] = base_step(method, k);
      for (double mult : args.multipliers)
        launch(method, k, mult, mult * base_step(method, k), iters);
    }
  }
  // EF21 at EF21-W's theory step (L_AM): the improved analysis of original EF21 in the EF21-W
  // paper allows it; reported as method "ef21_amstep" at multiplier 1 only.
  for (int64_t k : args.ks) {
    const int64_t iters = std::max<int64_t>(1, args.iterations / k);
    launch("ef21", k, 1.0, base_step("ef21w", k), iters);
    outcomes.back().method = "ef21_amstep";
  }
  summary["theory_steps"] = steps;

  // Group runs per method/k, mark the best multiplier, write one CSV per group.
  std::map<std::string, std::vector<const Outcome*>> groups;
  for (const Outcome& o : outcomes)
    groups[o.method == "gd" ? std::string("gd") : o.method + "_k" + std::to_string(o.k)].push_back(
        &o);
  nlohmann::json runs = nlohmann::json::array();
  std::printf(
      "\nbest multiplier per method/k (reached tol %.1e with fewest bits, else lowest "
      "final |grad|^2):\n",
      args.tol);
  for (const auto& [name, group] : groups) {
    const Outcome* best = group.front();
    for (const Outcome* o : group)
      if (better(o->result, best->result)) best = o;
    write_csv(args.out + "/" + name + ".csv", group);
    for (const Outcome* o : group)
      runs.push_back({{"group", name},
                      {"method", o->method},
                      {"k", o->k},
                      {"multiplier", o->multiplier},
                      {"gamma", o->gamma},
                      {"iterations", o->result.iterations_done},
                      {"bits_per_worker", o->result.bits_at_end},
                      {"final_grad_norm_sq", o->result.final_grad_norm_sq},
                      {"final_f", o->result.final_f},
                      {"diverged", o->result.diverged},
                      {"reached_tol", o->result.reached_tol},
                      {"best", o == best}});
    std::printf("  %-14s mult=%-6g |grad|^2=%.3e after %.4g bits/worker%s\n", name.c_str(),
                best->multiplier, best->result.final_grad_norm_sq, best->result.bits_at_end,
                best->result.reached_tol ? " (reached tol)" : "");
  }
  summary["runs"] = runs;
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  summary["seconds"] = secs;
  const std::string path = args.out + "/summary.json";
  std::ofstream os(path);
  TERSE_CHECK(os.good(), InvalidArgument, "ef21_logreg: cannot write ", path,
              "; check that --out is a writable directory");
  os << summary.dump(1) << '\n';
  std::printf("wrote %s and %zu CSV files in %.1f s\n", path.c_str(), groups.size(), secs);
  return 0;
}

}  // namespace
}  // namespace terse

int main(int argc, char** argv) {
  try {
    return terse::run(argc, argv);
  } catch (const terse::Error& e) {
    std::fprintf(stderr, "ef21_logreg: %s\n", e.what());
    return 2;
  }
}

// CPU optimizer step: every optimizer registered in terse's registry, in GB/s of the memory
// traffic its step must move (spec optimizers.md §19, bench/optim/optim_entry.cc), against
//  - the copy bandwidth of the machine: a stream copy of as many floats as the row has params,
//    same threads and schedule, timed in the same rounds as the step ("% copy"; an in-place update
//    pays no read for ownership, so it can exceed 100 %), and
//  - a "traffic twin" of the optimizer's access pattern where one fits (read p, g and its states,
//    write p and the states, one add per stream, built and scheduled like the real kernels;
//    "% twin" = twin time / terse time, 100 % = the roofline of that pattern), and
//  - torch::optim of the same sizes (sgd, adam, adamw) when built with libtorch.
//
//   optim_bench [--sizes 1M,4M,16M,64M] [--threads 1,2] [--optimizers sgd,adam,...] [--reps 7]
//               [--dtype f32|bf16|f16] [--json FILE] [--no-torch]
// A registered optimizer without a row in optim_entry.cc is an error (so none is left out
// silently); a row whose optimizer is not registered in this build is skipped with a message.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "optim/bench_args.h"
#include "optim/copy_bandwidth.h"
#include "optim/machine.h"
#include "optim/optim_entry.h"
#include "optim/param_set.h"
#include "optim/stream_copy.h"
#include "optim/timing.h"
#include "optim/traffic_twin.h"
#include "terse/kernels/cpu_threads.h"
#include "terse/optim/optimizer.h"

#ifdef TERSE_BENCH_TORCH
#include "optim/torch_step.h"
#endif

namespace {

using terse_bench::BenchArgs;
using terse_bench::OptimEntry;
using terse_bench::Timing;

// A handful of tensors summing to about `total`: 40%, 30%, 15%, 10%, 5%; with rows > 0 each is
// cut down to a whole number of rows so it can be shaped [rows, n / rows].
std::vector<int64_t> tensor_sizes(int64_t total, int rows) {
  const int64_t a = total * 40 / 100, b = total * 30 / 100, c = total * 15 / 100,
                d = total * 10 / 100;
  std::vector<int64_t> sizes = {a, b, c, d, total - a - b - c - d};
  if (rows > 0) {
    for (int64_t& n : sizes) n = std::max<int64_t>(rows, n / rows * rows);
  }
  return sizes;
}

int64_t sum(const std::vector<int64_t>& v) {
  int64_t s = 0;
  for (const int64_t x : v) s += x;
  return s;
}

struct Cell {
  Timing terse, twin;  // seconds per call of steps_per_call steps
  Timing copy;         // seconds per StreamCopy of as many floats as there are params
  double copy_bytes = 0;
  bool has_twin = false;
  double twin_checksum = 0;
  size_t state_bytes = 0;
};

// terse's step, its traffic twin (if any) and a stream copy of the same element count, timed in
// the same rounds so that all three see the same machine state.
template <typename T>
Cell time_cell(const OptimEntry& o, const std::vector<int64_t>& sizes, int reps) {
  const int threads = terse::cpu_threads();
  terse_bench::ParamSet<T> set(sizes, o.rows);
  auto opt = terse::make_optimizer(o.spec, set.params);
  terse_bench::StreamCopy copy(sum(sizes));
  std::vector<std::function<void()>> fns = {[&] {
                                              for (int s = 0; s < o.steps_per_call; ++s)
                                                opt->step();
                                            },
                                            [&] { copy.run(threads); }};
  Cell cell;
  cell.copy_bytes = copy.bytes();
  if (o.twin_states == 0) {
    const auto t = terse_bench::time_interleaved(reps, fns);
    cell.terse = t[0];
    cell.copy = t[1];
  } else {
    terse_bench::visit_twin<terse_bench::TwinStorage<T>>(
        o.twin_states, o.twin_state_size, sizes, [&](auto& twin) {
          fns.push_back([&] {
            for (int s = 0; s < o.steps_per_call; ++s) twin.step(threads);
          });
          const auto t = terse_bench::time_interleaved(reps, fns);
          cell.terse = t[0];
          cell.copy = t[1];
          cell.twin = t[2];
          if (!twin.verify()) {
            std::fprintf(stderr, "optim_bench: %s traffic twin gave wrong values at %lld params\n",
                         o.name, static_cast<long long>(sum(sizes)));
            std::exit(1);
          }
          cell.twin_checksum = twin.checksum();
        });
    cell.has_twin = true;
  }
  cell.state_bytes = opt->state_bytes();
  return cell;
}

Cell time_cell_for(terse::DType dtype, const OptimEntry& o, const std::vector<int64_t>& sizes,
                   int reps) {
  if (dtype == terse::DType::kBF16) return time_cell<terse::BFloat16>(o, sizes, reps);
  if (dtype == terse::DType::kF16) return time_cell<terse::Half>(o, sizes, reps);
  return time_cell<float>(o, sizes, reps);
}

// Builds each optimizer on two small tensors and steps it twice, so a bad option string or an
// unsupported dtype stops the run in a second instead of after minutes of other rows.
template <typename T>
void preflight(const OptimEntry& o) {
  const int64_t n = o.rows > 0 ? int64_t{o.rows} * 64 : 8192;
  terse_bench::ParamSet<T> set({n, n / 2 / std::max(o.rows, 1) * std::max(o.rows, 1)}, o.rows);
  auto opt = terse::make_optimizer(o.spec, set.params);
  opt->step();
  opt->step();
}

// The table rows to run: registered ones, in table order, narrowed by --optimizers. Exits with
// status 2 when a registered optimizer has no row or a requested name is unknown.
std::vector<const OptimEntry*> select(const BenchArgs& args, nlohmann::json& skipped) {
  const std::vector<std::string> registered = terse::optimizer_names();
  const auto is_registered = [&](const std::string& n) {
    return std::find(registered.begin(), registered.end(), n) != registered.end();
  };
  bool missing = false;
  for (const std::string& n : registered) {
    if (OptimEntry::find(n) == nullptr) {
      std::fprintf(stderr,
                   "optim_bench: optimizer '%s' is registered but has no row in "
                   "bench/optim/optim_entry.cc; add one (its spec §19 bytes per parameter and an "
                   "option string)\n",
                   n.c_str());
      missing = true;
    }
  }
  if (missing) std::exit(2);
  std::vector<std::string> wanted = args.optimizers;
  if (wanted.empty()) {
    for (const OptimEntry& e : OptimEntry::table()) wanted.push_back(e.name);
  }
  std::vector<const OptimEntry*> out;
  for (const std::string& n : wanted) {
    const OptimEntry* e = OptimEntry::find(n);
    if (e == nullptr) {
      std::fprintf(stderr, "optim_bench: --optimizers: unknown optimizer '%s'\n", n.c_str());
      std::exit(2);
    }
    if (!is_registered(n)) {
      skipped.push_back(n);
      continue;
    }
    out.push_back(e);
  }
  if (!skipped.empty()) {
    std::string names;
    for (const auto& n : skipped) names += (names.empty() ? "" : ", ") + n.get<std::string>();
    std::printf("skipped (not registered in this build): %s\n", names.c_str());
  }
  return out;
}

// Stops the run (false, with a message) when an optimizer cannot be built and stepped on two
// small tensors, so a bad option string or an unsupported dtype shows in a second instead of
// after minutes of other rows.
bool preflight_all(const std::vector<const OptimEntry*>& optims, terse::DType dtype) {
  for (const OptimEntry* o : optims) {
    try {
      if (dtype == terse::DType::kBF16) {
        preflight<terse::BFloat16>(*o);
      } else if (dtype == terse::DType::kF16) {
        preflight<terse::Half>(*o);
      } else {
        preflight<float>(*o);
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr,
                   "optim_bench: %s ('%s', %s) fails a 2-step check: %s\nFix its row in "
                   "bench/optim/optim_entry.cc or leave it out with --optimizers.\n",
                   o->name, o->spec, terse::dtype_name(dtype), e.what());
      return false;
    }
  }
  return true;
}

// One table row, printed and returned as JSON.
nlohmann::json run_row(const BenchArgs& args, const OptimEntry& o, int64_t size, int threads,
                       int64_t l3, bool with_torch) {
  const std::vector<int64_t> sizes = tensor_sizes(size, o.rows);
  const int64_t n = sum(sizes);
  const Cell cell = time_cell_for(args.dtype, o, sizes, args.reps);
  const double copy_gbps = cell.copy_bytes / cell.copy.best / 1e9;
  const double ts = cell.terse.best / o.steps_per_call;
  const double bytes_per_param =
      o.bytes_per_param(args.dtype, static_cast<double>(cell.state_bytes) / static_cast<double>(n));
  const double bytes = bytes_per_param * static_cast<double>(n);
  const double gbps = bytes / ts / 1e9;
  const double pct_copy = 100 * gbps / copy_gbps;
  const double working_set =
      2.0 * static_cast<double>(terse::dtype_size(args.dtype)) * static_cast<double>(n) +
      static_cast<double>(cell.state_bytes);
  const bool cache_resident = l3 > 0 && working_set <= static_cast<double>(l3);
  nlohmann::json row = {{"optimizer", o.name},
                        {"spec", o.spec},
                        {"params", n},
                        {"threads", threads},
                        {"bytes_per_param", bytes_per_param},
                        {"working_set_bytes", working_set},
                        {"cache_resident", cache_resident},
                        {"steps_per_call", o.steps_per_call},
                        {"terse_ms", ts * 1e3},
                        {"terse_median_ms", cell.terse.median / o.steps_per_call * 1e3},
                        {"gbps", gbps},
                        {"copy_gbps", copy_gbps},
                        {"pct_copy", pct_copy},
                        {"note", o.note}};
  std::printf("%-12s %7s %7.0f %-3s %6.2f %8.2f %7.1f %7.1f %5.0f%%", o.name,
              terse_bench::size_label(n).c_str(), working_set / (1 << 20),
              cache_resident ? "yes" : "no", bytes_per_param, ts * 1e3, gbps, copy_gbps, pct_copy);
  if (cell.has_twin) {
    const double tw = cell.twin.best / o.steps_per_call;
    row["twin_ms"] = tw * 1e3;
    row["twin_median_ms"] = cell.twin.median / o.steps_per_call * 1e3;
    row["twin_gbps"] = bytes / tw / 1e9;
    row["pct_twin"] = 100 * tw / ts;
    row["twin_checksum"] = cell.twin_checksum;
    std::printf(" %8.2f %5.0f%%", tw * 1e3, 100 * tw / ts);
  } else {
    std::printf(" %8s %6s", "-", "-");
  }
#ifdef TERSE_BENCH_TORCH
  if (with_torch && terse_bench::torch_has(o.name)) {
    const Timing torch_t = terse_bench::torch_step_time(o.name, sizes, args.reps, args.dtype);
    row["torch_ms"] = torch_t.best * 1e3;
    row["torch_median_ms"] = torch_t.median * 1e3;
    row["speedup_vs_torch"] = torch_t.best / ts;
    std::printf(" %9.2f %6.2fx\n", torch_t.best * 1e3, torch_t.best / ts);
  } else {
    std::printf(" %9s %7s\n", "-", "-");
  }
#else
  (void)with_torch;
  std::printf(" %9s %7s\n", "-", "-");
#endif
  std::fflush(stdout);
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  const BenchArgs args = BenchArgs::parse(argc, argv);
  bool with_torch = args.torch;
#ifndef TERSE_BENCH_TORCH
  with_torch = false;
#endif
  nlohmann::json out;
  out["skipped"] = nlohmann::json::array();
  const std::vector<const OptimEntry*> optims = select(args, out["skipped"]);
  if (!preflight_all(optims, args.dtype)) return 1;

  const auto [l3, l3_source] = terse_bench::l3_cache();
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  out["date"] = date;
  out["cpu"] = terse_bench::cpu_model();
  out["reps"] = args.reps;
  out["l3_bytes"] = l3;
  out["l3_source"] = l3_source;
  out["dtype"] = terse::dtype_name(args.dtype);
  out["results"] = nlohmann::json::array();
  for (const OptimEntry* o : optims) out["specs"][o->name] = o->spec;
  std::printf(
      "CPU optimizer step, %s params, %s, L3 %.0f MiB (%s), %s\n"
      "best of %d steps; GB/s = spec §19 bytes/param x params / time; %% copy = GB/s / stream "
      "copy of as many floats, timed in the same rounds;\n%% twin = twin time / terse time\n",
      terse::dtype_name(args.dtype), terse_bench::cpu_model().c_str(),
      static_cast<double>(l3) / (1 << 20), l3_source.c_str(), date, args.reps);
  for (const OptimEntry* o : optims) {
    if (o->state_bytes == OptimEntry::kMeasuredState) {
      std::printf("  %-12s %5.1f + 2 x state_bytes() / params  ", o->name,
                  o->param_streams * static_cast<double>(terse::dtype_size(args.dtype)));
    } else {
      std::printf("  %-12s %6.2f B/param  ", o->name, o->bytes_per_param(args.dtype, 0));
    }
    std::printf("%s%s%s\n", o->spec, *o->note ? "  -- " : "", o->note);
  }
  for (const int t : args.threads) {
    terse::set_cpu_threads(t);
#ifdef TERSE_BENCH_TORCH
    terse_bench::torch_set_threads(t);
#endif
    const auto bw = terse_bench::CopyBandwidth::measure(t, args.reps);
    out["copy_gbps"][std::to_string(t)] = {{"memcpy", bw.memcpy_gbps}, {"loop", bw.loop_gbps}};
    std::printf("\nthreads=%d  copy bandwidth (read+write): memcpy %.1f GB/s, loop %.1f GB/s\n", t,
                bw.memcpy_gbps, bw.loop_gbps);
    std::printf("%-12s %7s %7s %-3s %6s %8s %7s %7s %6s %8s %6s %9s %7s\n", "optim", "params",
                "ws MiB", "L3", "B/p", "ms/step", "GB/s", "copy", "%copy", "twin ms", "%twin",
                "torch ms", "speedup");
    for (const OptimEntry* o : optims) {
      for (const int64_t size : args.sizes) {
        out["results"].push_back(run_row(args, *o, size, t, l3, with_torch));
      }
    }
  }
  if (!args.json.empty()) {
    std::ofstream f(args.json);
    f << out.dump(2) << "\n";
  }
  return 0;
}

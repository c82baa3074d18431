#pragma once

// Shared by the collective benchmarks (one_bit_all_reduce_bench, collectives_bench): size
// parsing and the timing rule (barrier, then the slowest rank's time, median over calls).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "terse/comm/communicator.h"

namespace terse::bench {

// "1M" -> 1048576, "64k" -> 65536, plain numbers as they are; <= 0 when unparsable.
inline int64_t parse_size(const std::string& s) {
  const char last = s.empty() ? '\0' : s.back();
  const int64_t base = std::atoll(s.c_str());
  if (last == 'M' || last == 'm') return base << 20;
  if (last == 'k' || last == 'K') return base << 10;
  return base;
}

inline std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= list.size()) {
    const size_t comma = std::min(list.find(',', pos), list.size());
    out.push_back(list.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

inline std::string size_name(int64_t n) {
  if (n % (1 << 20) == 0) return std::to_string(n >> 20) + "M";
  if (n % (1 << 10) == 0) return std::to_string(n >> 10) + "k";
  return std::to_string(n);
}

inline double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct Timing {
  double wall_s = 0;  // median over calls of the slowest rank's wall time
  double cpu_s = 0;   // median over calls of the largest per-rank CPU time of this thread
};

// `setup` (untimed) runs before each call; one warm-up call first (page faults, MPI buffers).
// Each timed call starts after a barrier, so it measures the collective, not rank skew.
inline Timing time_collective(Communicator& c, int reps, const std::function<void()>& setup,
                              const std::function<void()>& op) {
  setup();
  op();
  std::vector<double> wall, cpu;
  for (int r = 0; r < reps; ++r) {
    setup();
    c.barrier();
    const double c0 = thread_cpu_s();
    const auto a = std::chrono::steady_clock::now();
    op();
    double t[2] = {std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count(),
                   thread_cpu_s() - c0};
    c.all_reduce(TensorView::of(t, 2), ReduceOp::kMax);
    wall.push_back(t[0]);
    cpu.push_back(t[1]);
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  return Timing{wall[wall.size() / 2], cpu[cpu.size() / 2]};
}

}  // namespace terse::bench

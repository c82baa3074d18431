#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <utility>
#include <vector>

namespace terse_bench {

// Best and median of a set of timed calls, in seconds. Tables use the best: on a shared machine
// other users' work only ever adds time.
struct Timing {
  double best = 0, median = 0;

  static Timing of(std::vector<double> t) {
    std::sort(t.begin(), t.end());
    return {t.front(), t[t.size() / 2]};
  }
};

// `reps` timed calls after one warm-up call.
inline Timing time_calls(int reps, const std::function<void()>& fn) {
  fn();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return Timing::of(std::move(t));
}

// One untimed call (warms the cache with fn's own data), then one timed call; seconds.
inline double warm_then_time(const std::function<void()>& fn) {
  fn();
  const auto start = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// `reps` rounds of warm_then_time(fn) for each fn in turn: all see the same machine state (on a
// shared machine, other users' work changes it from second to second), and each is timed on a
// cache warmed with its own data (which matters only where the working set fits the L3).
inline std::vector<Timing> time_interleaved(int reps,
                                            const std::vector<std::function<void()>>& fns) {
  std::vector<std::vector<double>> t(fns.size());
  for (int r = 0; r < reps; ++r) {
    for (size_t i = 0; i < fns.size(); ++i) t[i].push_back(warm_then_time(fns[i]));
  }
  std::vector<Timing> out;
  for (auto& ti : t) out.push_back(Timing::of(std::move(ti)));
  return out;
}

}  // namespace terse_bench

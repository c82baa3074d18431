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

// `reps` rounds of warm_then_time(a) then warm_then_time(b) (b may be empty): both see the same
// machine state, and each is timed on a cache warmed with its own data (which matters only where
// the working set fits the L3).
inline std::pair<Timing, Timing> time_interleaved(int reps, const std::function<void()>& a,
                                                  const std::function<void()>& b) {
  std::vector<double> ta, tb;
  for (int r = 0; r < reps; ++r) {
    ta.push_back(warm_then_time(a));
    if (b) tb.push_back(warm_then_time(b));
  }
  return {Timing::of(std::move(ta)), b ? Timing::of(std::move(tb)) : Timing{}};
}

}  // namespace terse_bench

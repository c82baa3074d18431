#pragma once

// What DGC's passes share to run on a rank's threads and to time their phases. Private to
// terse_dgc.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace terse::dgc_detail {

// The parts a pass over n elements is split into: below ~1M elements a thread start costs more
// than the part it would take.
inline int parts_for(int64_t n, int threads) {
  constexpr int64_t kMinPerThread = int64_t{1} << 19;
  return static_cast<int>(std::min<int64_t>(threads, std::max<int64_t>(1, n / kMinPerThread)));
}

// fn(w, begin, end) for the `parts` contiguous parts w of [0, n): part 0 on the calling thread,
// the others on threads of their own, all joined before it returns. Callers that concatenate
// per-part results in w order get what one part over [0, n) would give.
template <typename Fn>
void for_parts(int64_t n, int parts, Fn&& fn) {
  if (parts <= 1) {
    fn(0, int64_t{0}, n);
    return;
  }
  const int64_t chunk = (n + parts - 1) / parts;
  std::vector<std::thread> pool;
  for (int w = 1; w < parts; ++w) {
    pool.emplace_back([&fn, w, chunk, n] { fn(w, w * chunk, std::min(n, (w + 1) * chunk)); });
  }
  fn(0, int64_t{0}, std::min(n, chunk));
  for (auto& th : pool) th.join();
}

// Adds the seconds since the last lap to *acc; no clock is read when it is off (no profile).
class PhaseClock {
 public:
  explicit PhaseClock(bool on) : on_(on) {
    if (on_) t_ = std::chrono::steady_clock::now();
  }
  void lap(double* acc) {
    if (!on_) return;
    const auto now = std::chrono::steady_clock::now();
    *acc += std::chrono::duration<double>(now - t_).count();
    t_ = now;
  }
  // Starts the next phase now, counting the time since the last lap nowhere.
  void restart() {
    if (on_) t_ = std::chrono::steady_clock::now();
  }

 private:
  bool on_;
  std::chrono::steady_clock::time_point t_;
};

}  // namespace terse::dgc_detail

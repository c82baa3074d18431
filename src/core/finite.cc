#include "terse/core/finite.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

namespace terse {

bool all_finite(const float* x, int64_t n) {
  constexpr uint32_t kExponent = 0x7f800000u;
  constexpr int64_t kBlock = 1024;  // early exit granularity: a NaN stops the scan soon
  int64_t i = 0;
  while (i < n) {
    const int64_t end = n - i < kBlock ? n : i + kBlock;
    uint32_t bad = 0;
    for (; i < end; ++i) {
      uint32_t u;
      std::memcpy(&u, x + i, sizeof u);
      bad |= static_cast<uint32_t>((u & kExponent) == kExponent);
    }
    if (bad != 0) return false;
  }
  return true;
}

bool all_finite(const float* x, int64_t n, int threads) {
  // Below ~1M elements a thread start costs more than the part it would take (as DGC's passes).
  constexpr int64_t kMinPerThread = int64_t{1} << 19;
  const int t = static_cast<int>(
      std::min<int64_t>(std::max(threads, 1), std::max<int64_t>(1, n / kMinPerThread)));
  if (t <= 1) return all_finite(x, n);
  const int64_t chunk = (n + t - 1) / t;
  std::atomic<bool> ok{true};
  std::vector<std::thread> pool;
  for (int w = 1; w < t; ++w) {
    const int64_t b = w * chunk, e = std::min(n, (w + 1) * chunk);
    pool.emplace_back([=, &ok] {
      if (!all_finite(x + b, e - b)) ok.store(false, std::memory_order_relaxed);
    });
  }
  if (!all_finite(x, std::min(n, chunk))) ok.store(false, std::memory_order_relaxed);
  for (auto& th : pool) th.join();
  return ok.load(std::memory_order_relaxed);
}

}  // namespace terse

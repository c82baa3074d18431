#include "terse/core/finite.h"

#include <cstring>

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

}  // namespace terse

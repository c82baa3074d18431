#include "terse/core/philox.h"

#include "terse/core/check.h"

namespace terse {

uint32_t PhiloxStream::next_u32() {
  if (lane_ == 4) {
    block_ = gen_.at(counter_++, stream_);
    lane_ = 0;
  }
  const uint32_t words[4] = {block_.x, block_.y, block_.z, block_.w};
  return words[lane_++];
}

uint64_t PhiloxStream::below(uint64_t n) {
  TERSE_CHECK(n > 0, InvalidArgument, "PhiloxStream::below needs n > 0, got 0");
  if (n <= 0xffffffffull) {
    // Lemire: multiply-shift with rejection of the biased low range.
    const uint32_t bound = static_cast<uint32_t>(n);
    const uint32_t threshold = static_cast<uint32_t>(-bound) % bound;
    for (;;) {
      const uint64_t m = uint64_t{next_u32()} * bound;
      if (static_cast<uint32_t>(m) >= threshold) return m >> 32;
    }
  }
  const uint64_t limit = ~0ull - (~0ull % n);
  for (;;) {
    const uint64_t r = next_u64();
    if (r < limit) return r % n;
  }
}

}  // namespace terse

#pragma once

#include <cstdint>

#include "terse/core/macros.h"

namespace terse {

// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
// counter-based generator. The output is a pure function of (key, counter), so every rank and
// every device that uses the same seed and counter sees the same numbers, in any order, with no
// state to share. terse uses key = seed and counter = (offset, stream id).
struct Philox4x32 {
  struct U4 {
    uint32_t x, y, z, w;
  };

  uint32_t key0, key1;

  TERSE_HD explicit Philox4x32(uint64_t seed)
      : key0(static_cast<uint32_t>(seed)), key1(static_cast<uint32_t>(seed >> 32)) {}

  // Ten rounds over the 128-bit counter.
  TERSE_HD U4 operator()(U4 c) const {
    uint32_t k0 = key0, k1 = key1;
    for (int r = 0; r < 10; ++r) {
      const uint64_t p0 = uint64_t{kM0} * c.x;
      const uint64_t p1 = uint64_t{kM1} * c.z;
      const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
      const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
      c = U4{hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0};
      k0 += kW0;
      k1 += kW1;
    }
    return c;
  }

  // Four 32-bit words for element block `index` of stream `stream`.
  TERSE_HD U4 at(uint64_t index, uint64_t stream) const {
    return (*this)(U4{static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                      static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)});
  }

  // Uniform float in [0, 1) from 24 random bits.
  TERSE_HD static float uniform(uint32_t bits) {
    return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
  }

  static constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  static constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
};

// A sequential stream on top of Philox for host code (shuffles, sampling): draw() walks the
// counter; the same (seed, stream) gives the same sequence on every rank.
class PhiloxStream {
 public:
  PhiloxStream(uint64_t seed, uint64_t stream) : gen_(seed), stream_(stream) {}
  uint32_t next_u32();
  uint64_t next_u64() { return (uint64_t{next_u32()} << 32) | next_u32(); }
  // Uniform integer in [0, n), unbiased (Lemire's method with rejection).
  uint64_t below(uint64_t n);
  float uniform() { return Philox4x32::uniform(next_u32()); }
  uint64_t position() const { return counter_ * 4 + lane_; }

 private:
  Philox4x32 gen_;
  uint64_t stream_;
  uint64_t counter_ = 0;
  int lane_ = 4;
  Philox4x32::U4 block_{};
};

}  // namespace terse

#pragma once

// Rand-k's coordinates (terse/compress/rand_k.h): the first k outputs of a keyed pseudo-random
// permutation of [0, n), pi(0), ..., pi(k - 1), sorted ascending. Each output is computed on its
// own, so the CPU (RandK::indices) and the GPU (terse/kernels/cuda_rand_k.h) compute them in any
// order and in parallel and get the same set.
//
// pi is an alternating Feistel network (Luby & Rackoff 1988) over the b-bit integers,
// b = max(8, ceil(log2 n)), split into a high half of ceil(b / 2) bits and a low half of
// floor(b / 2) bits: round r (0..7) XORs into one half (the high one in even rounds) the top
// bits of mix64(other half ^ key_r), which is a bijection of [0, 2^b) whatever the round
// function. Values >= n are sent through the network again until they land in [0, n) (cycle
// walking, Black & Rogaway 2002): that restricts a permutation of [0, 2^b) to one of [0, n), and
// takes fewer than two rounds of the network on average (2^b < 2n for n > 128). The 8 round keys
// are the 16 words of Philox4x32(seed_step) blocks 0..3 of the "RANDK" stream, so every rank
// with the same seed_step derives the same permutation.
//
// For a uniformly random permutation the first k outputs would be a uniform k-subset; the
// network is pseudo-random, so every index is kept with probability k/n and every k-subset is
// about equally likely, up to the network's statistical defects (tests/unit/compress checks the
// inclusion frequency of each index and of each pair over many seeds against k/n and
// k(k-1)/(n(n-1))).
#include <cstdint>

#include "terse/core/macros.h"
#include "terse/core/philox.h"

namespace terse {

// Rand-k's Philox stream: keeps these draws apart from the other compressors'.
inline constexpr uint64_t kRandKStream = 0x52414e444bull;  // "RANDK"

class RandKPermutation {
 public:
  static constexpr int kRounds = 8;
  static constexpr unsigned kMinBits = 8;

  TERSE_HD RandKPermutation(uint64_t n, uint64_t seed_step) : n_(n) {
    unsigned bits = kMinBits;
    while (bits < 64 && (uint64_t{1} << bits) < n) ++bits;
    lo_bits_ = bits / 2;
    hi_bits_ = bits - lo_bits_;
    const Philox4x32 gen(seed_step);
    for (int b = 0; b < kRounds / 2; ++b) {
      const Philox4x32::U4 w = gen.at(static_cast<uint64_t>(b), kRandKStream);
      key_[2 * b] = uint64_t{w.x} | uint64_t{w.y} << 32;
      key_[2 * b + 1] = uint64_t{w.z} | uint64_t{w.w} << 32;
    }
  }

  // pi(i) for i < n.
  TERSE_HD uint64_t operator()(uint64_t i) const {
    uint64_t y = network(i);
    while (y >= n_) y = network(y);  // ends: i's cycle of the network comes back to i < n
    return y;
  }

  // Bits of the network's domain: pi's values are below 2^domain_bits().
  TERSE_HD unsigned domain_bits() const { return hi_bits_ + lo_bits_; }

 private:
  // The SplitMix64 finaliser (Steele et al. 2014): a bijection of 64-bit words whose top bits
  // depend on every input bit.
  TERSE_HD static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  TERSE_HD uint64_t network(uint64_t v) const {
    uint64_t hi = v >> lo_bits_;
    uint64_t lo = v & ((uint64_t{1} << lo_bits_) - 1);
    for (int r = 0; r < kRounds; ++r) {
      if (r % 2 == 0) {
        hi ^= mix64(lo ^ key_[r]) >> (64 - hi_bits_);
      } else {
        lo ^= mix64(hi ^ key_[r]) >> (64 - lo_bits_);
      }
    }
    return hi << lo_bits_ | lo;
  }

  uint64_t n_;
  unsigned hi_bits_ = 0, lo_bits_ = 0;
  uint64_t key_[kRounds] = {};
};

}  // namespace terse

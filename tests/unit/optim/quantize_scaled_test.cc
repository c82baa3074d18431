// DynamicMap::quantize_scaled (the 17-bit table, portable and AVX2 loops) and bucket_map_code
// (the GPU's) give quantize()'s codes: the fast paths against the reference rule.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <iostream>
#include <limits>
#include <random>
#include <vector>

#include "terse/core/dtype.h"
#include "terse/kernels/dynamic_map.h"
#include "terse/kernels/quant_avx2.h"

namespace terse {
namespace {

// Every bucket end of both tables, every code and midpoint with 2 ulp either side, the special
// values, and random floats: bit patterns over the whole range, and magnitudes log-uniform over
// the map's range (where the codes change).
std::vector<float> probes() {
  std::vector<float> x;
  for (uint32_t k = 0; k < (1u << 17); ++k) {
    x.push_back(bits_to_float(k << 15));
    x.push_back(bits_to_float(k << 15 | 0x7fffu));
  }
  for (const DynamicMap* m : {&DynamicMap::signed_map(), &DynamicMap::unsigned_map()}) {
    for (int c = 0; c < DynamicMap::kCodes; ++c) {
      const float v = m->value(static_cast<uint8_t>(c));
      const float next = c + 1 < DynamicMap::kCodes ? m->value(static_cast<uint8_t>(c + 1)) : v;
      for (const float at : {v, (v + next) * 0.5f}) {
        for (const float s : {1.0f, -1.0f}) {
          float lo = s * at, hi = s * at;
          x.push_back(lo);
          for (int u = 0; u < 2; ++u) {
            lo = std::nextafter(lo, -INFINITY);
            hi = std::nextafter(hi, INFINITY);
            x.push_back(lo);
            x.push_back(hi);
          }
        }
      }
    }
  }
  using L = std::numeric_limits<float>;
  for (const float v :
       {0.0f, -0.0f, L::quiet_NaN(), -L::quiet_NaN(), L::signaling_NaN(),
        bits_to_float(0x7f800001u), bits_to_float(0xffc00001u), L::infinity(), -L::infinity(),
        L::denorm_min(), -L::denorm_min(), L::min(), -L::min(), bits_to_float(0x007fffffu),
        bits_to_float(0x807fffffu), L::max(), -L::max(), 1.0f, -1.0f}) {
    x.push_back(v);
  }
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> exponent(-9.0f, 0.5f);
  for (int k = 0; k < 2000000; ++k) {
    x.push_back(bits_to_float(static_cast<uint32_t>(rng())));
    const float v = std::pow(10.0f, exponent(rng));
    x.push_back(rng() & 1u ? -v : v);
  }
  return x;
}

int64_t mismatches(const DynamicMap& m, const std::vector<float>& x, float scale, bool simd) {
  std::vector<uint8_t> got(x.size());
  m.quantize_scaled(x.data(), static_cast<int64_t>(x.size()), scale, got.data(), simd);
  int64_t bad = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const uint8_t want = m.quantize(x[i] * scale);
    if (got[i] != want && bad++ < 5) {
      ADD_FAILURE() << (m.is_signed() ? "signed" : "unsigned") << (simd ? " simd" : " portable")
                    << " x = " << x[i] << " (0x" << std::hex << float_to_bits(x[i]) << std::dec
                    << ") * " << scale << ": " << int{got[i]} << " != " << int{want};
    }
  }
  return bad;
}

TEST(QuantizeScaled, EqualsQuantizeOnEveryBucketMidpointSpecialAndRandomFloat) {
  if (!quant_avx2::has_avx2()) {
    std::cout << "[   NOTE   ] no AVX2 on this CPU: simd runs the portable loop\n";
  }
  const std::vector<float> x = probes();
  for (const DynamicMap* m : {&DynamicMap::signed_map(), &DynamicMap::unsigned_map()}) {
    for (const bool simd : {false, true}) {
      EXPECT_EQ(mismatches(*m, x, 1.0f, simd), 0);
      // A scale as quantize_block uses (1 / absmax): the product is what is quantized.
      EXPECT_EQ(mismatches(*m, x, 1.0f / 3.7f, simd), 0);
    }
  }
}

// bucket_map_code (the GPU step's search: one bucket read, one midpoint compare) against the
// tree on the same probes; their bucket ends are among the 17-bit table's.
TEST(BucketMapCode, EqualsQuantizeOnEveryBucketMidpointSpecialAndRandomFloat) {
  const std::vector<float> x = probes();
  for (const DynamicMap* m : {&DynamicMap::signed_map(), &DynamicMap::unsigned_map()}) {
    int64_t bad = 0;
    for (const float v : x) {
      const uint8_t got = bucket_map_code(m->bucket_base(), m->sorted_midpoints(), m->search_tree(),
                                          v, m->is_signed(), m->zero_code());
      const uint8_t want = m->quantize(v);
      if (got != want && bad++ < 5) {
        ADD_FAILURE() << (m->is_signed() ? "signed" : "unsigned") << " x = " << v << " (0x"
                      << std::hex << float_to_bits(v) << std::dec << "): " << int{got}
                      << " != " << int{want};
      }
    }
    EXPECT_EQ(bad, 0);
  }
}

TEST(QuantizeScaled, EveryLengthAndOffsetOfTheVectorLoopAndItsTail) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  std::vector<float> x(64);
  for (float& v : x) v = normal(rng);
  for (const DynamicMap* m : {&DynamicMap::signed_map(), &DynamicMap::unsigned_map()}) {
    for (int64_t off = 0; off < 4; ++off) {
      for (int64_t n = 0; n + off <= 64; ++n) {
        std::vector<uint8_t> got(static_cast<size_t>(n) + 1, 0xaa);
        m->quantize_scaled(x.data() + off, n, 1.0f, got.data(), true);
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_EQ(got[i], m->quantize(x[off + i])) << "n " << n << " off " << off << " i " << i;
        }
        EXPECT_EQ(got[n], 0xaa) << "wrote past n = " << n;
      }
    }
  }
}

}  // namespace
}  // namespace terse

#include "terse/core/philox.h"

#include <gtest/gtest.h>

#include <set>

namespace terse {
namespace {

// Random123's published known-answer vectors for Philox4x32-10 (counter words, key words).
struct Kat {
  Philox4x32::U4 ctr;
  uint64_t key;
  Philox4x32::U4 expected;
};

TEST(Philox, KnownAnswers) {
  const Kat kats[] = {
      {{0, 0, 0, 0}, 0, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       0xffffffffffffffffull,
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       (uint64_t{0x299f31d0} << 32) | 0xa4093822,
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Kat& k : kats) {
    const auto out = Philox4x32(k.key)(k.ctr);
    EXPECT_EQ(out.x, k.expected.x);
    EXPECT_EQ(out.y, k.expected.y);
    EXPECT_EQ(out.z, k.expected.z);
    EXPECT_EQ(out.w, k.expected.w);
  }
}

TEST(Philox, StreamsAreReproducibleAndDistinct) {
  PhiloxStream a(42, 7), b(42, 7), c(42, 8);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const uint32_t x = a.next_u32();
    EXPECT_EQ(x, b.next_u32());
    differs |= x != c.next_u32();
  }
  EXPECT_TRUE(differs);
}

TEST(Philox, BelowIsInRangeAndCoversIt) {
  PhiloxStream s(1, 0);
  std::set<uint64_t> seen;
  for (int i = 0; i < 2000; ++i) {
    const uint64_t v = s.below(10);
    ASSERT_LT(v, 10u);
    seen.insert(v);
  }
  EXPECT_EQ(seen.size(), 10u);
  EXPECT_LT(s.below(uint64_t{1} << 40), uint64_t{1} << 40);
}

TEST(Philox, UniformIsInUnitInterval) {
  PhiloxStream s(3, 0);
  double sum = 0;
  for (int i = 0; i < 100000; ++i) {
    const float u = s.uniform();
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
  }
  EXPECT_NEAR(sum / 100000, 0.5, 0.01);
}

}  // namespace
}  // namespace terse

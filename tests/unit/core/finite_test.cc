#include "terse/core/finite.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace terse {
namespace {

TEST(AllFinite, EmptyAndFiniteArraysAreFinite) {
  EXPECT_TRUE(all_finite(nullptr, 0));
  std::vector<float> x = {0.0f,
                          -0.0f,
                          1.0f,
                          -3e38f,
                          std::numeric_limits<float>::max(),
                          std::numeric_limits<float>::denorm_min(),
                          -1e-45f};
  EXPECT_TRUE(all_finite(x.data(), static_cast<int64_t>(x.size())));
}

// Every position of a length that has full blocks of 1024 and a tail: one bad value anywhere,
// of each kind, is found; and only the first n elements are read.
TEST(AllFinite, FindsOneNanOrInfAtAnyPosition) {
  const float bad[] = {std::nanf(""), -std::nanf(""), std::numeric_limits<float>::infinity(),
                       -std::numeric_limits<float>::infinity()};
  const int64_t n = 2 * 1024 + 37;
  for (const float b : bad) {
    for (const int64_t pos : {int64_t{0}, int64_t{1}, int64_t{1023}, int64_t{1024}, int64_t{2047},
                              int64_t{2048}, n - 1}) {
      std::vector<float> x(static_cast<size_t>(n) + 1, 1.0f);
      x[static_cast<size_t>(pos)] = b;
      EXPECT_FALSE(all_finite(x.data(), n)) << "value " << b << " at " << pos;
      EXPECT_TRUE(all_finite(x.data(), pos)) << "the prefix before " << pos;
    }
  }
  std::vector<float> x(10, 2.0f);
  x[9] = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(all_finite(x.data(), 9));  // the element past n is not read
}

}  // namespace
}  // namespace terse

// bnb's dynamic quantization maps and block-wise 8-bit quantization (spec optimizers.md §10).

#include "terse/kernels/blockwise_quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "terse/kernels/dynamic_map.h"

namespace terse {
namespace {

// bnb's create_dynamic_map(signed, 7, 8) written out with scalar f32 arithmetic (torch's scalar
// linspace: start + step*j for the first half, end - step*(n-1-j) for the second).
std::vector<float> formula_map(bool is_signed) {
  std::vector<float> data;
  for (int i = 0; i < 7; ++i) {
    const int k = is_signed ? (1 << i) : (1 << (i + 1));
    const int steps = k + 1;
    const float step = (1.0f - 0.1f) / static_cast<float>(steps - 1);
    const auto boundary = [&](int j) {
      return j < steps / 2 ? 0.1f + step * static_cast<float>(j)
                           : 1.0f - step * static_cast<float>(steps - 1 - j);
    };
    const float scale = static_cast<float>(std::pow(10.0, i - 6));
    for (int j = 0; j < k; ++j) {
      const float mean = (boundary(j) + boundary(j + 1)) / 2.0f;
      data.push_back(scale * mean);
      if (is_signed) data.push_back(-(scale * mean));
    }
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  std::sort(data.begin(), data.end());
  return data;
}

int ulp_distance(float a, float b) {
  return std::abs(static_cast<int>(float_to_bits(a)) - static_cast<int>(float_to_bits(b)));
}

// The nearest code by brute force: the number of midpoints between adjacent codes below x (so
// an exact tie takes the lower code), checked to be no farther from x than any other code up to
// a few ulp of x (the midpoints are rounded).
int nearest(const DynamicMap& m, float x) {
  int below = 0;
  for (int c = 0; c + 1 < DynamicMap::kCodes; ++c) {
    below += (m.value(static_cast<uint8_t>(c)) + m.value(static_cast<uint8_t>(c + 1))) / 2 < x;
  }
  const float d = std::fabs(x - m.value(static_cast<uint8_t>(below)));
  for (int c = 0; c < DynamicMap::kCodes; ++c) {
    EXPECT_LE(d, std::fabs(x - m.value(static_cast<uint8_t>(c))) + 5e-7f * std::fabs(x)) << x;
  }
  return below;
}

TEST(DynamicMap, TablesAreBnbsMaps) {
  const DynamicMap& s = DynamicMap::signed_map();
  const DynamicMap& u = DynamicMap::unsigned_map();
  for (const DynamicMap* m : {&s, &u}) {
    const std::vector<float> f = formula_map(m->is_signed());
    ASSERT_EQ(f.size(), 256u);
    for (int c = 0; c < 256; ++c) {
      EXPECT_LE(ulp_distance(m->value(static_cast<uint8_t>(c)), f[static_cast<size_t>(c)]), 2)
          << (m->is_signed() ? "signed" : "unsigned") << " code " << c;
      if (c > 0) {
        EXPECT_LT(m->value(static_cast<uint8_t>(c - 1)), m->value(static_cast<uint8_t>(c)));
      }
    }
  }
  // The spec's landmarks: signed 127 negatives, 0 at 127, +1.0 at 255, most negative -0.99297,
  // smallest magnitude 5.5e-7; unsigned 0 ... 1.0, smallest positive 3.25e-7.
  EXPECT_EQ(s.zero_code(), 127);
  EXPECT_EQ(s.value(127), 0.0f);
  EXPECT_EQ(s.value(255), 1.0f);
  EXPECT_FLOAT_EQ(s.value(0), -0.99296875f);
  EXPECT_FLOAT_EQ(s.value(128), 5.5e-7f);
  EXPECT_FLOAT_EQ(s.value(126), -5.5e-7f);
  EXPECT_EQ(u.zero_code(), 0);
  EXPECT_EQ(u.value(0), 0.0f);
  EXPECT_EQ(u.value(255), 1.0f);
  EXPECT_FLOAT_EQ(u.value(1), 3.25e-7f);
  EXPECT_NEAR(s.max_gap(), 0.0140625f, 1e-7f);
}

TEST(DynamicMap, QuantizeIsNearestCode) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> mag(-8.0f, 0.0f);
  for (const DynamicMap* m : {&DynamicMap::signed_map(), &DynamicMap::unsigned_map()}) {
    for (int k = 0; k < 20000; ++k) {
      // Log-uniform magnitudes cover every exponent band of the map.
      float x = std::pow(10.0f, mag(rng));
      if (m->is_signed() && (k & 1)) x = -x;
      const int want = nearest(*m, x);
      const int got = m->quantize(x);
      // Only the sign rule may move a code: a tiny negative x nearest to +0 keeps its sign.
      if (m->is_signed() && x < 0 && want == 127) {
        EXPECT_EQ(got, 126) << x;
      } else {
        EXPECT_EQ(got, want) << x;
      }
    }
    // Around every midpoint (where the code changes) and at both ends of every 16-bit bucket of
    // the lookup table.
    for (int c = 0; c + 1 < 256; ++c) {
      const float mid =
          (m->value(static_cast<uint8_t>(c)) + m->value(static_cast<uint8_t>(c + 1))) / 2;
      // Exactly on the midpoint: the lower code (the sign rule aside).
      EXPECT_EQ(m->quantize(mid), m->is_signed() && c == 127 && std::signbit(mid) ? 126 : c);
      for (const float x : {std::nextafter(mid, -2.0f), std::nextafter(mid, 2.0f)}) {
        const int want = nearest(*m, x);
        EXPECT_EQ(m->quantize(x), std::signbit(x) && want == 127 ? 126 : want) << x;
      }
    }
    for (uint32_t b = 0; b < (1u << 16); b += 1) {
      for (const uint32_t low : {0u, 0xffffu}) {
        const float x = bits_to_float((b << 16) | low);
        if (!(std::fabs(x) <= 1.5f) || (!m->is_signed() && x < 0)) continue;
        const int want = nearest(*m, x);
        EXPECT_EQ(m->quantize(x), std::signbit(x) && want == 127 ? 126 : want) << x;
      }
    }
    // Every code quantizes to itself, and the search reaches both ends.
    for (int c = 0; c < 256; ++c) EXPECT_EQ(m->quantize(m->value(static_cast<uint8_t>(c))), c);
    EXPECT_EQ(m->quantize(2.0f), 255);
    EXPECT_EQ(m->quantize(std::numeric_limits<float>::infinity()), 255);
  }
  const DynamicMap& s = DynamicMap::signed_map();
  EXPECT_EQ(s.quantize(-2.0f), 0);
  EXPECT_EQ(s.quantize(1e-9f), 127);   // rounds to 0
  EXPECT_EQ(s.quantize(-1e-9f), 126);  // bnb: keep the sign, smallest negative code
  EXPECT_EQ(s.quantize(-0.0f), 126);   // as bnb (signbit differs from code +0's)
  EXPECT_EQ(s.quantize(0.0f), 127);
  EXPECT_EQ(s.quantize(std::numeric_limits<float>::quiet_NaN()), 0);
  EXPECT_EQ(DynamicMap::unsigned_map().quantize(0.0f), 0);
}

TEST(BlockwiseQuant, RoundTripErrorIsAtMostHalfTheLargestGapTimesAbsmax) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t n = 5 * kQuantBlockSize + 77;  // a partial last block
  std::vector<float> x(static_cast<size_t>(n));
  for (size_t i = 0; i < x.size(); ++i) {
    // Blocks of very different scales, and an outlier, as optimizer states have.
    const float scale = std::pow(10.0f, static_cast<float>(i / kQuantBlockSize) - 3.0f);
    x[i] = scale * normal(rng);
  }
  x[300] = 50.0f;
  for (const DynamicMap* m : {&DynamicMap::signed_map(), &DynamicMap::unsigned_map()}) {
    std::vector<float> in = x;
    if (!m->is_signed()) {
      for (float& v : in) v = std::fabs(v);
    }
    std::vector<uint8_t> codes(in.size());
    std::vector<float> absmax(static_cast<size_t>(quant_num_blocks(n))), out(in.size());
    ASSERT_EQ(absmax.size(), 6u);
    quantize_blockwise(in.data(), n, *m, codes.data(), absmax.data());
    dequantize_blockwise(codes.data(), absmax.data(), n, *m, out.data());
    const float half_gap = m->max_gap() / 2;
    for (int64_t b = 0; b < quant_num_blocks(n); ++b) {
      float want_absmax = 0;
      const int64_t lo = b * kQuantBlockSize;
      const int64_t hi = std::min(n, lo + kQuantBlockSize);
      for (int64_t i = lo; i < hi; ++i) want_absmax = std::max(want_absmax, std::fabs(in[i]));
      EXPECT_EQ(absmax[b], want_absmax) << "block " << b;  // exact: a max, no arithmetic
      // 1e-6 * absmax of slack for the rounding of code * absmax and of the difference.
      const float bound = (half_gap + 1e-6f) * absmax[b];
      for (int64_t i = lo; i < hi; ++i) {
        EXPECT_LE(std::fabs(in[i] - out[i]), bound) << "element " << i << " = " << in[i];
        // The largest positive element is code 1.0: exact.
        if (in[i] == absmax[b]) {
          EXPECT_EQ(out[i], in[i]);
        }
      }
    }
  }
}

TEST(BlockwiseQuant, NegativeEndOfTheSignedMapSitsOnTheBound) {
  // -absmax maps to -0.99296875 * absmax: the signed map has +1.0 but no -1.0 (bnb's map).
  float x[2] = {-4.0f, 2.0f};
  uint8_t c[2];
  float absmax = 0, out[2];
  quantize_blockwise(x, 2, DynamicMap::signed_map(), c, &absmax);
  dequantize_blockwise(c, &absmax, 2, DynamicMap::signed_map(), out);
  EXPECT_EQ(absmax, 4.0f);
  EXPECT_EQ(c[0], 0);
  EXPECT_FLOAT_EQ(out[0], -4.0f * 0.99296875f);
  EXPECT_FLOAT_EQ(std::fabs(out[0] - x[0]), DynamicMap::signed_map().max_gap() / 2 * 4.0f);
}

TEST(BlockwiseQuant, ZeroBlocksStoreAbsmaxZeroAndTheZeroCode) {
  std::vector<float> x(2 * kQuantBlockSize, 0.0f);
  x[kQuantBlockSize + 3] = 0.5f;  // block 1 is not zero
  for (const DynamicMap* m : {&DynamicMap::signed_map(), &DynamicMap::unsigned_map()}) {
    std::vector<uint8_t> codes(x.size(), 99);
    float absmax[2] = {-1, -1};
    std::vector<float> out(x.size(), -1);
    quantize_blockwise(x.data(), 2 * kQuantBlockSize, *m, codes.data(), absmax);
    dequantize_blockwise(codes.data(), absmax, 2 * kQuantBlockSize, *m, out.data());
    EXPECT_EQ(absmax[0], 0.0f);
    EXPECT_EQ(absmax[1], 0.5f);
    for (int64_t i = 0; i < kQuantBlockSize; ++i) {
      EXPECT_EQ(codes[i], m->zero_code());
      EXPECT_EQ(out[i], 0.0f);  // no 0/0
    }
    EXPECT_EQ(out[kQuantBlockSize + 3], 0.5f);
    EXPECT_EQ(out[kQuantBlockSize + 4], 0.0f);
  }
}

TEST(BlockwiseQuant, ANonFiniteValuePoisonsItsBlockOnly) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (const float bad : {nan, inf, -inf}) {
    std::vector<float> x(3 * kQuantBlockSize, 0.25f);
    x[kQuantBlockSize + 10] = bad;
    std::vector<uint8_t> codes(x.size());
    float absmax[3];
    std::vector<float> out(x.size());
    const DynamicMap& m = DynamicMap::signed_map();
    quantize_blockwise(x.data(), 3 * kQuantBlockSize, m, codes.data(), absmax);
    dequantize_blockwise(codes.data(), absmax, 3 * kQuantBlockSize, m, out.data());
    EXPECT_EQ(absmax[0], 0.25f);
    EXPECT_EQ(absmax[2], 0.25f);
    EXPECT_FALSE(std::isfinite(absmax[1])) << bad;
    if (std::isnan(bad)) {
      EXPECT_TRUE(std::isnan(absmax[1]));
    }
    for (int64_t i = 0; i < kQuantBlockSize; ++i) {
      EXPECT_EQ(out[i], 0.25f);
      EXPECT_EQ(out[2 * kQuantBlockSize + i], 0.25f);
      EXPECT_FALSE(std::isfinite(out[kQuantBlockSize + i])) << bad << " element " << i;
    }
  }
}

// block_absmax's max over abs_bits (quant_code.h), which the GPU step takes with a warp max:
// the largest magnitude, +0 for zeros of either sign, and the one quiet NaN 0x7fc00000 for a NaN
// of any sign and payload, wherever it sits (the GPU's NaNs differ from x86's).
TEST(BlockwiseQuant, BlockAbsmaxIsTheLargestMagnitudeAndOneNanForEveryNan) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x(kQuantBlockSize, -0.0f);
  EXPECT_EQ(float_to_bits(block_absmax(x.data(), kQuantBlockSize)), 0u);
  x[200] = -std::numeric_limits<float>::denorm_min();
  EXPECT_EQ(block_absmax(x.data(), kQuantBlockSize), std::numeric_limits<float>::denorm_min());
  x[3] = -0.75f;
  x[250] = 0.5f;
  EXPECT_EQ(block_absmax(x.data(), kQuantBlockSize), 0.75f);
  x[7] = -inf;
  EXPECT_EQ(block_absmax(x.data(), kQuantBlockSize), inf);
  for (const uint32_t nan : {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xffffffffu, 0x7fffffffu}) {
    for (const int at : {0, 100, 255}) {
      std::vector<float> y = x;
      y[static_cast<size_t>(at)] = bits_to_float(nan);
      EXPECT_EQ(float_to_bits(block_absmax(y.data(), kQuantBlockSize)), 0x7fc00000u)
          << std::hex << nan << std::dec << " at " << at;
    }
  }
  EXPECT_EQ(absmax_of_bits(abs_bits(-2.5f)), 2.5f);
}

// The search tree holds the 255 midpoints between adjacent codes in breadth-first order: an
// in-order walk gives them sorted, and dynamic_map_code over it is quantize().
void in_order(const float* tree, int i, std::vector<float>& out) {
  if (i >= DynamicMap::kCodes) return;
  in_order(tree, 2 * i, out);
  out.push_back(tree[i]);
  in_order(tree, 2 * i + 1, out);
}

TEST(DynamicMap, SearchTreeHoldsTheMidpointsBreadthFirst) {
  for (const DynamicMap* m : {&DynamicMap::signed_map(), &DynamicMap::unsigned_map()}) {
    std::vector<float> walk;
    in_order(m->search_tree(), 1, walk);
    ASSERT_EQ(walk.size(), 255u);
    for (int c = 0; c + 1 < DynamicMap::kCodes; ++c) {
      const float mid =
          (m->value(static_cast<uint8_t>(c)) + m->value(static_cast<uint8_t>(c + 1))) * 0.5f;
      EXPECT_EQ(float_to_bits(walk[static_cast<size_t>(c)]), float_to_bits(mid)) << c;
    }
    for (const float x : {-1.0f, -0.3f, -1e-6f, -0.0f, 0.0f, 2e-7f, 0.004f, 0.5f, 1.0f}) {
      EXPECT_EQ(dynamic_map_code(m->search_tree(), x, m->is_signed(), m->zero_code()),
                m->quantize(x));
    }
  }
}

}  // namespace
}  // namespace terse

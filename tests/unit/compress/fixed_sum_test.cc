// The fixed-order double sum of ScaledSign's and QSGD's norms (terse/kernels/fixed_order_sum.h)
// against a plain transcription of its definition, and the compressors' scale and norm bytes
// against it.
#include "terse/kernels/fixed_order_sum.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "terse/compress/qsgd.h"
#include "terse/compress/scaled_sign.h"
#include "terse/compress/wire_format.h"
#include "terse/core/error.h"
#include "terse/core/philox.h"

namespace terse {
namespace {

using fixed_sum::Term;

// The definition, written out: lane partials p_{16 b + j}, zero-padded to a power of two, then
// neighbours added level by level.
double reference_sum(const std::vector<float>& x, Term t) {
  const auto n = static_cast<int64_t>(x.size());
  const int64_t blocks = (n + 2047) / 2048;
  std::vector<double> p(static_cast<size_t>(16 * blocks), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const double d = x[static_cast<size_t>(i)];
    p[static_cast<size_t>(16 * (i / 2048) + i % 16)] += t == Term::kAbs ? std::fabs(d) : d * d;
  }
  size_t width = 1;
  while (width < p.size()) width *= 2;
  p.resize(width, 0.0);
  while (p.size() > 1) {
    std::vector<double> up(p.size() / 2);
    for (size_t j = 0; j < up.size(); ++j) up[j] = p[2 * j] + p[2 * j + 1];
    p.swap(up);
  }
  return p.empty() ? 0.0 : p[0];
}

// Values of many magnitudes (2^-40 .. 2^40), so the order of additions shows in the bits.
std::vector<float> wide_floats(int64_t n, uint64_t seed) {
  PhiloxStream rng(seed, 3);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x)
    v = std::ldexp(2.0f * rng.uniform() - 1.0f, static_cast<int>(rng.below(81)) - 40);
  return x;
}

uint64_t bits_of(double d) {
  uint64_t b;
  std::memcpy(&b, &d, 8);
  return b;
}

float f32_at(const std::vector<uint8_t>& p, size_t off) {
  uint32_t b = 0;
  for (int i = 0; i < 4; ++i) b |= uint32_t{p[off + static_cast<size_t>(i)]} << (8 * i);
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

std::vector<uint8_t> payload(const Compressor& c, std::vector<float> x) {
  std::vector<uint8_t> out(c.max_encoded_bytes(static_cast<int64_t>(x.size())));
  out.resize(c.encode(TensorView::of(x.data(), static_cast<int64_t>(x.size())), 5, out.data(),
                      out.size()));
  return out;
}

const std::vector<int64_t> kSizes = {0,    1,    15,   16,    17,     2047,         2048,
                                     2049, 4097, 6149, 34817, 100003, (1 << 20) + 3};

TEST(FixedOrderSum, IsTheDefinitionToTheLastBit) {
  for (const int64_t n : kSizes) {
    const std::vector<float> x = wide_floats(n, 17 + static_cast<uint64_t>(n));
    for (const Term t : {Term::kAbs, Term::kSquare}) {
      const double want = reference_sum(x, t);
      const double got = fixed_sum::host_sum(x.data(), n, t);
      EXPECT_EQ(bits_of(want), bits_of(got))
          << "n=" << n << (t == Term::kAbs ? " |x|" : " x^2") << ": " << want << " vs " << got;
    }
  }
}

TEST(FixedOrderSum, OrderMattersSoTheTestCanFail) {
  // The sequential sum of the same terms rounds differently: the comparison above has teeth.
  const std::vector<float> x = wide_floats(100003, 120);
  double seq = 0.0;
  for (const float v : x) seq += std::fabs(static_cast<double>(v));
  EXPECT_NE(bits_of(seq), bits_of(fixed_sum::host_sum(x.data(), 100003, Term::kAbs)));
  EXPECT_NEAR(seq, fixed_sum::host_sum(x.data(), 100003, Term::kAbs), 1e-12 * seq);
}

TEST(FixedOrderSum, NonFiniteTermsAndZeros) {
  std::vector<float> x(5000, 0.0f);
  EXPECT_EQ(bits_of(fixed_sum::host_sum(x.data(), 5000, Term::kAbs)), bits_of(0.0));
  x[17] = -0.0f;
  EXPECT_EQ(bits_of(fixed_sum::host_sum(x.data(), 5000, Term::kSquare)), bits_of(0.0));
  x[4000] = -std::numeric_limits<float>::infinity();
  EXPECT_EQ(fixed_sum::host_sum(x.data(), 5000, Term::kAbs),
            std::numeric_limits<double>::infinity());
  x[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(fixed_sum::host_sum(x.data(), 5000, Term::kSquare)));
  // The largest floats neither overflow the double sum nor its squares.
  std::vector<float> big(3000, -std::numeric_limits<float>::max());
  EXPECT_TRUE(std::isfinite(fixed_sum::host_sum(big.data(), 3000, Term::kSquare)));
}

TEST(FixedOrderSum, ScaledSignAndQsgdWriteTheSumsScaleAndNorm) {
  for (const int64_t n : kSizes) {
    if (n == 0) continue;
    const std::vector<float> x = wide_floats(n, 5 + static_cast<uint64_t>(n));
    const auto sign = payload(ScaledSign(), x);
    EXPECT_EQ(f32_at(sign, kPayloadHeaderBytes),
              static_cast<float>(reference_sum(x, Term::kAbs) / static_cast<double>(n)))
        << "sign n=" << n;
    const auto qsgd = payload(Qsgd(127), x);
    EXPECT_EQ(f32_at(qsgd, kPayloadHeaderBytes + 4),
              static_cast<float>(std::sqrt(reference_sum(x, Term::kSquare))))
        << "qsgd n=" << n;
  }
  // Non-finite input: NumericalError, as before.
  std::vector<float> x = wide_floats(3000, 1);
  x[2500] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(payload(ScaledSign(), x), NumericalError);
  EXPECT_THROW(payload(Qsgd(5), x), NumericalError);
  // ||x||_2 above FLT_MAX: the norm is +Inf as a float, refused too.
  std::vector<float> big(16, std::numeric_limits<float>::max());
  EXPECT_THROW(payload(Qsgd(5), big), NumericalError);
  EXPECT_EQ(f32_at(payload(ScaledSign(), big), kPayloadHeaderBytes),
            std::numeric_limits<float>::max());
}

}  // namespace
}  // namespace terse

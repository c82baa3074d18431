#include "terse/compress/compressor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "terse/compress/qsgd.h"
#include "terse/compress/rand_k.h"
#include "terse/compress/top_k.h"
#include "terse/core/error.h"
#include "terse/core/philox.h"

namespace terse {
namespace {

std::vector<float> random_vec(int64_t n, uint64_t seed) {
  PhiloxStream rng(seed, 7);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = 2.0f * rng.uniform() - 1.0f;
  return v;
}

std::vector<uint8_t> encode(const Compressor& c, std::vector<float>& x, uint64_t seed = 1) {
  std::vector<uint8_t> buf(c.max_encoded_bytes(static_cast<int64_t>(x.size())));
  const size_t n = c.encode(TensorView::of(x.data(), static_cast<int64_t>(x.size())), seed,
                            buf.data(), buf.size());
  EXPECT_LE(n, buf.size());
  buf.resize(n);
  return buf;
}

std::vector<float> decode(const Compressor& c, const std::vector<uint8_t>& p, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n), 123.0f);
  c.decode(p.data(), p.size(), TensorView::of(out.data(), n), false);
  return out;
}

double sqnorm(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double{x} * x;
  return s;
}

TEST(Compressor, FactoryNamesAndSpecs) {
  for (const auto& name : compressor_names()) EXPECT_EQ(make_compressor(name)->name(), name);
  EXPECT_EQ(make_compressor("topk:density=0.25,values=f16")->spec(),
            "topk:density=0.25,values=f16");
  EXPECT_EQ(make_compressor("randk:scale=false,density=0.5")->spec(),
            "randk:density=0.5,values=f32,scale=false,send_indices=false");
  EXPECT_EQ(make_compressor("qsgd:levels=15")->spec(), "qsgd:levels=15");
}

TEST(Compressor, FactoryRejectsBadOptions) {
  const char* bad[] = {"topk:density=0",
                       "topk:density=1.5",
                       "topk:density=abc",
                       "topk:values=f64",
                       "topk:k=0",
                       "topk:density",
                       "randk:scale=yes",
                       "qsgd:levels=0",
                       "qsgd:levels=40000",
                       "qsgd:levels=2.5",
                       "sign:x=1",
                       "gzip",
                       "topk:density=0.1,density=0.2"};
  for (const char* s : bad) EXPECT_THROW(make_compressor(s), InvalidArgument) << s;
  try {
    make_compressor("topk:density=2");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("density=2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("0 < density <= 1"), std::string::npos) << e.what();
  }
}

TEST(Compressor, TopKPicksLargestMagnitudesExactly) {
  std::vector<float> x = {0.1f, -5.0f, 0.3f, 2.0f, -0.2f, 4.0f, 0.0f, -3.0f};
  TopK c(0.5, ValueCoding::kF32);
  const auto p = encode(c, x);
  const auto y = decode(c, p, 8);
  const std::vector<float> want = {0, -5.0f, 0, 0, 0, 4.0f, 0, -3.0f};
  // k = 4: -5, 4, -3, 2
  std::vector<float> want4 = want;
  want4[3] = 2.0f;
  EXPECT_EQ(y, want4);
  EXPECT_EQ(read_payload_header(p.data(), p.size()).count, 4u);
}

TEST(Compressor, TopKTiesBrokenByIndex) {
  std::vector<float> x = {1, -1, 1, -1, 1, -1};
  TopK c(0.5, ValueCoding::kF32);
  const auto y = decode(c, encode(c, x), 6);
  EXPECT_EQ(y, (std::vector<float>{1, -1, 1, 0, 0, 0}));
}

TEST(Compressor, TopKContraction) {
  for (double density : {0.001, 0.01, 0.1, 0.5}) {
    TopK c(density, ValueCoding::kF32);
    auto x = random_vec(5000, 3);
    const auto y = decode(c, encode(c, x), 5000);
    std::vector<float> d(x.size());
    for (size_t i = 0; i < x.size(); ++i) d[i] = y[i] - x[i];
    const double k = static_cast<double>(c.k_for(5000));
    EXPECT_LE(sqnorm(d), (1.0 - k / 5000.0) * sqnorm(x) + 1e-9) << density;
    // Top-k does better than the bound on a non-flat vector.
    EXPECT_LT(sqnorm(d), (1.0 - k / 5000.0) * sqnorm(x)) << density;
  }
}

TEST(Compressor, ExactRoundTrips) {
  auto x = random_vec(1000, 5);
  auto c = make_compressor("topk:density=1");
  EXPECT_EQ(decode(*c, encode(*c, x), 1000), x);
  auto r = make_compressor("randk:density=1,scale=false,send_indices=true");
  EXPECT_EQ(decode(*r, encode(*r, x), 1000), x);
}

TEST(Compressor, Fp16AndBf16CastError) {
  auto x = random_vec(4097, 9);
  for (auto& v : x) v *= 100.0f;
  const auto y16 = decode(*make_compressor("fp16"), encode(*make_compressor("fp16"), x), 4097);
  const auto yb = decode(*make_compressor("bf16"), encode(*make_compressor("bf16"), x), 4097);
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::fabs(x[i]) < 6.2e-5f) continue;  // f16 subnormal range: absolute error instead
    EXPECT_LE(std::fabs(y16[i] - x[i]), std::ldexp(1.0f, -11) * std::fabs(x[i])) << x[i];
    EXPECT_LE(std::fabs(yb[i] - x[i]), std::ldexp(1.0f, -8) * std::fabs(x[i])) << x[i];
  }
  const auto p = encode(*make_compressor("fp16"), x);
  EXPECT_EQ(p.size(), kPayloadHeaderBytes + 2 * 4097);
}

TEST(Compressor, ScaledSignValues) {
  std::vector<float> x = {1.0f, -2.0f, 0.0f, 3.0f, -4.0f, 5.0f, 6.0f, -7.0f, 8.0f};
  auto c = make_compressor("sign");
  const auto p = encode(*c, x);
  EXPECT_EQ(p.size(), kPayloadHeaderBytes + 4 + 2);
  // MSB-first, 1 = negative: 0100 1001 | 0(pad)
  EXPECT_EQ(p[kPayloadHeaderBytes + 4], 0x49);
  EXPECT_EQ(p[kPayloadHeaderBytes + 5], 0x00);
  const float s = 36.0f / 9.0f;
  EXPECT_EQ(decode(*c, p, 9), (std::vector<float>{s, -s, s, s, -s, s, s, -s, s}));
}

// Averages C(x) over many seeds: E[C(x)] = x within a tolerance of 5 standard errors, where the
// per-element standard error is estimated from the samples themselves.
void expect_unbiased(const std::string& spec, double tol_sigmas) {
  auto c = make_compressor(spec);
  auto x = random_vec(64, 11);
  const int trials = 4000;
  std::vector<double> sum(x.size(), 0.0), sum2(x.size(), 0.0);
  for (int t = 0; t < trials; ++t) {
    const auto y = decode(*c, encode(*c, x, 1000 + static_cast<uint64_t>(t)), 64);
    for (size_t i = 0; i < x.size(); ++i) {
      sum[i] += y[i];
      sum2[i] += double{y[i]} * y[i];
    }
  }
  for (size_t i = 0; i < x.size(); ++i) {
    const double mean = sum[i] / trials;
    const double var = std::max(sum2[i] / trials - mean * mean, 1e-12);
    const double se = std::sqrt(var / trials);
    EXPECT_NEAR(mean, x[i], tol_sigmas * se + 1e-6) << spec << " element " << i;
  }
}

TEST(Compressor, QsgdUnbiased) { expect_unbiased("qsgd:levels=4", 5.0); }
TEST(Compressor, TernGradUnbiased) { expect_unbiased("terngrad", 5.0); }
TEST(Compressor, RandKUnbiased) { expect_unbiased("randk:density=0.25", 5.0); }

TEST(Compressor, RandKWithoutScaleIsShrunk) {
  // scale=false keeps the values as they are: E[C(x)] = (k/n) x.
  RandK c(0.25, ValueCoding::kF32, false, false);
  std::vector<float> x(16, 1.0f);
  const auto y = decode(c, encode(c, x), 16);
  int kept = 0;
  for (float v : y) kept += v == 1.0f;
  EXPECT_EQ(kept, 4);
  RandK s(0.25, ValueCoding::kF32, true, false);
  const auto z = decode(s, encode(s, x), 16);
  for (float v : z) EXPECT_TRUE(v == 0.0f || v == 4.0f);
}

TEST(Compressor, RandKIndicesReproducibleFromSeed) {
  RandK a(0.1, ValueCoding::kF32, true, false), b(0.1, ValueCoding::kF32, true, true);
  EXPECT_EQ(a.indices(1000, 42), b.indices(1000, 42));
  EXPECT_NE(a.indices(1000, 42), a.indices(1000, 43));
  auto x = random_vec(1000, 2);
  EXPECT_EQ(decode(a, encode(a, x, 42), 1000), decode(b, encode(b, x, 42), 1000));
  EXPECT_EQ(encode(a, x, 42), encode(a, x, 42));
}

TEST(Compressor, QsgdLevelsAndBits) {
  Qsgd q(127);
  EXPECT_EQ(q.field_bits(), 8u);
  EXPECT_EQ(Qsgd(1).field_bits(), 2u);
  EXPECT_EQ(Qsgd(3).field_bits(), 3u);
  EXPECT_EQ(Qsgd(4).field_bits(), 4u);
  auto x = random_vec(100, 4);
  const auto y = decode(q, encode(q, x), 100);
  const float norm = static_cast<float>(std::sqrt(sqnorm(x)));
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_LE(std::fabs(y[i] - x[i]), norm / 127.0f * 1.0001f);
    const double lvl = std::fabs(y[i]) * 127.0 / norm;
    EXPECT_NEAR(lvl, std::round(lvl), 1e-3);
  }
}

TEST(Compressor, DecodeAccumulateAdds) {
  for (const auto& name : compressor_names()) {
    auto c = make_compressor(name);
    auto x = random_vec(300, 8);
    const auto p = encode(*c, x);
    const auto y = decode(*c, p, 300);
    std::vector<float> acc(300);
    for (size_t i = 0; i < acc.size(); ++i) acc[i] = static_cast<float>(i);
    c->decode(p.data(), p.size(), TensorView::of(acc.data(), 300), true);
    for (size_t i = 0; i < acc.size(); ++i)
      EXPECT_FLOAT_EQ(acc[i], static_cast<float>(i) + y[i]) << name;
  }
}

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// decode with a weight gives, bit for bit, the unweighted decode times the weight (the product
// rounded to f32, then added onto out): for every compressor and option set, both modes.
TEST(Compressor, WeightedDecodeIsWeightTimesDecode) {
  const char* specs[] = {"topk:density=0.1",
                         "topk:density=0.1,values=f16",
                         "randk:density=0.2",
                         "randk:density=0.2,send_indices=true,values=f16",
                         "dgc:density=0.1",
                         "sign",
                         "onebit",
                         "qsgd:levels=127",
                         "qsgd:levels=5",
                         "terngrad",
                         "fp16",
                         "bf16"};
  const int64_t n = 301;
  for (const char* s : specs) {
    auto c = make_compressor(s);
    auto x = random_vec(n, 21);
    const auto p = encode(*c, x);
    const auto y = decode(*c, p, n);
    for (const float w : {1.0f, 0.375f, 1.0f / 3.0f, -2.5f, 0.0f}) {
      std::vector<float> acc = random_vec(n, 22);  // no -0 here, so base + (+-0) == base
      const std::vector<float> base = acc;
      c->decode(p.data(), p.size(), TensorView::of(acc.data(), n), true, w);
      std::vector<float> over(static_cast<size_t>(n), 123.0f);
      c->decode(p.data(), p.size(), TensorView::of(over.data(), n), false, w);
      for (size_t i = 0; i < acc.size(); ++i) {
        const float wy = w * y[i];
        ASSERT_EQ(bits_of(acc[i]), bits_of(base[i] + wy)) << s << " w=" << w << " i=" << i;
        // Unselected elements of a sparse payload are +0 whatever the weight's sign.
        ASSERT_EQ(over[i], wy) << s << " w=" << w << " i=" << i;
        if (w == 1.0f) {
          ASSERT_EQ(bits_of(over[i]), bits_of(y[i])) << s << " i=" << i;
        }
      }
    }
    std::vector<float> out(static_cast<size_t>(n), 5.0f);
    for (const float w : {std::nanf(""), INFINITY}) {
      EXPECT_THROW(c->decode(p.data(), p.size(), TensorView::of(out.data(), n), true, w),
                   InvalidArgument)
          << s;
    }
    EXPECT_EQ(out, std::vector<float>(static_cast<size_t>(n), 5.0f)) << s;
  }
}

TEST(Compressor, MaxEncodedBytesNeverExceeded) {
  const char* specs[] = {"topk:density=0.01",
                         "topk:density=1,values=f16",
                         "randk:density=0.3,send_indices=true",
                         "randk",
                         "sign",
                         "qsgd:levels=1",
                         "qsgd:levels=32767",
                         "terngrad",
                         "fp16",
                         "bf16"};
  PhiloxStream rng(99, 1);
  std::vector<int64_t> sizes = {0, 1, 2, 7, 8, 9, 4097, 100000};
  for (int i = 0; i < 12; ++i) sizes.push_back(static_cast<int64_t>(rng.below(20000)));
  for (const char* s : specs) {
    auto c = make_compressor(s);
    for (int64_t n : sizes) {
      auto x = random_vec(n, static_cast<uint64_t>(n));
      // Wide magnitudes make the varint gaps and values as long as they get.
      for (size_t i = 0; i < x.size(); i += 3) x[i] *= 1e6f;
      const size_t bound = c->max_encoded_bytes(n);
      std::vector<uint8_t> buf(bound + 16, 0xAB);
      const size_t len = c->encode(TensorView::of(x.data(), n), 5, buf.data(), bound);
      EXPECT_LE(len, bound) << s << " n=" << n;
      for (size_t j = bound; j < buf.size(); ++j) ASSERT_EQ(buf[j], 0xAB) << s;
      std::vector<float> out(static_cast<size_t>(n));
      c->decode(buf.data(), len, TensorView::of(out.data(), n), false);
      const PayloadHeader h = read_payload_header(buf.data(), len);
      EXPECT_EQ(h.payload_bytes(), len);
    }
    EXPECT_THROW(c->max_encoded_bytes(-1), InvalidArgument) << s;
    EXPECT_THROW(c->max_encoded_bytes(int64_t{1} << 60), InvalidArgument) << s;
    std::vector<float> one(10);
    std::vector<uint8_t> small(c->max_encoded_bytes(10) - 1);
    EXPECT_THROW(c->encode(TensorView::of(one.data(), 10), 0, small.data(), small.size()),
                 InvalidArgument)
        << s;
  }
}

TEST(Compressor, BitsPerElement) {
  auto x = random_vec(1 << 16, 6);
  const auto sign = encode(*make_compressor("sign"), x);
  EXPECT_NEAR(read_payload_header(sign.data(), sign.size()).bits_per_element(), 1.0, 0.01);
  const auto fp16 = encode(*make_compressor("fp16"), x);
  EXPECT_NEAR(read_payload_header(fp16.data(), fp16.size()).bits_per_element(), 16.0, 0.01);
  const auto topk = encode(*make_compressor("topk:density=0.01"), x);
  const double b = read_payload_header(topk.data(), topk.size()).bits_per_element();
  EXPECT_GT(b, 32.0 + 8.0);  // f32 value + at least one varint byte
  EXPECT_LT(b, 32.0 + 24.0);
}

TEST(Compressor, EncodeRejectsNaNForTopK) {
  std::vector<float> x = {1.0f, std::nanf(""), 2.0f};
  auto c = make_compressor("topk:density=0.5");
  std::vector<uint8_t> buf(c->max_encoded_bytes(3));
  EXPECT_THROW(c->encode(TensorView::of(x.data(), 3), 0, buf.data(), buf.size()), NumericalError);
  EXPECT_THROW(make_compressor("qsgd")->encode(TensorView::of(x.data(), 3), 0, buf.data(), 0),
               InvalidArgument);
}

TEST(Compressor, TopKAbsoluteK) {
  auto c = make_compressor("topk:k=3,values=f16");
  EXPECT_EQ(c->spec(), "topk:k=3,values=f16");
  EXPECT_EQ(make_compressor(c->spec())->spec(), c->spec());
  const auto& t = dynamic_cast<const TopK&>(*c);
  EXPECT_EQ(t.k_for(1000000), 3);
  EXPECT_EQ(t.k_for(3), 3);
  EXPECT_EQ(t.k_for(2), 2);  // a tensor smaller than k is sent whole
  EXPECT_EQ(t.k_for(0), 0);
  std::vector<float> x = {0.5f, -4.0f, 1.0f, 3.0f, -0.25f, 2.0f, 0.0f};
  const auto y = decode(*c, encode(*c, x), 7);
  EXPECT_EQ(y, (std::vector<float>{0, -4, 0, 3, 0, 2, 0}));
  // max_encoded_bytes: 3 f16 values + 3 varints of at most varint_bytes(n) bytes.
  EXPECT_EQ(c->max_encoded_bytes(1000), kPayloadHeaderBytes + 3 * 2 + 3 * 2);
  EXPECT_EQ(TopK::with_k(5, ValueCoding::kF32).spec(), "topk:k=5,values=f32");
  EXPECT_EQ(make_compressor("topk:k=1")->spec(), "topk:k=1,values=f32");
}

TEST(Compressor, TopKKOptionRejectsBadValues) {
  const char* bad[] = {"topk:k=0",
                       "topk:k=-2",
                       "topk:k=2.5",
                       "topk:k=abc",
                       "topk:k=1e20",
                       "topk:k=3,density=0.1",
                       "topk:density=0.1,k=3"};
  for (const char* s : bad) EXPECT_THROW(make_compressor(s), InvalidArgument) << s;
  try {
    make_compressor("topk:density=0.5,k=4");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("both k=4 and density=0.5"), std::string::npos)
        << e.what();
  }
  try {
    make_compressor("topk:k=0");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("k=0 is out of range"), std::string::npos) << e.what();
  }
  EXPECT_THROW(TopK::with_k(0, ValueCoding::kF32), InvalidArgument);
  EXPECT_THROW(TopK::with_k(2, ValueCoding::kBF16), InvalidArgument);
}

TEST(Compressor, NewCompressorsRoundTripAndBound) {
  for (const char* s : {"onebit", "dgc", "dgc:density=0.01,values=f16", "topk:k=7"}) {
    auto c = make_compressor(s);
    for (int64_t n : {0, 1, 9, 4097, 30000}) {
      auto x = random_vec(n, static_cast<uint64_t>(n) + 3);
      const size_t bound = c->max_encoded_bytes(n);
      const auto p = encode(*c, x);
      EXPECT_LE(p.size(), bound) << s << " n=" << n;
      const auto y = decode(*c, p, n);
      ASSERT_EQ(y.size(), x.size());
      // Every compressor here keeps signs: a decoded non-zero has the sign of its input.
      for (size_t i = 0; i < y.size(); ++i) {
        if (y[i] != 0.0f) {
          ASSERT_EQ(y[i] > 0.0f, x[i] >= 0.0f) << s << " i=" << i;
        }
      }
    }
  }
}

}  // namespace
}  // namespace terse

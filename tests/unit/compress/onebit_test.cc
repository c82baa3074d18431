#include "terse/compress/one_bit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "terse/compress/compressor.h"
#include "terse/core/error.h"
#include "terse/core/philox.h"

namespace terse {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes encode(const Compressor& c, std::vector<float> x) {
  Bytes buf(c.max_encoded_bytes(static_cast<int64_t>(x.size())));
  buf.resize(c.encode(TensorView::of(x.data(), static_cast<int64_t>(x.size())), 3, buf.data(),
                      buf.size()));
  return buf;
}

std::vector<float> decode(const Compressor& c, const Bytes& p, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n), 123.0f);
  c.decode(p.data(), p.size(), TensorView::of(out.data(), n), false);
  return out;
}

float f32_at(const Bytes& p, size_t off) {
  uint32_t b = 0;
  for (int i = 0; i < 4; ++i) b |= uint32_t{p[off + static_cast<size_t>(i)]} << (8 * i);
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

void set_f32(Bytes& p, size_t off, float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  for (int i = 0; i < 4; ++i) p[off + static_cast<size_t>(i)] = static_cast<uint8_t>(b >> (8 * i));
}

// Decoding p must throw CorruptData whose message contains `field`, and leave out untouched.
void expect_corrupt(const Compressor& c, const Bytes& p, int64_t n, const std::string& field) {
  for (bool accumulate : {false, true}) {
    std::vector<float> out(static_cast<size_t>(n), 7.0f);
    try {
      c.decode(p.data(), p.size(), TensorView::of(out.data(), n), accumulate);
      ADD_FAILURE() << "no CorruptData for " << field;
    } catch (const CorruptData& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
    for (float v : out) ASSERT_EQ(v, 7.0f) << field;
  }
}

const std::vector<float> kHand = {1, -2, 3, -4, 0, 5, -0.5f, 2, 7};

TEST(OneBit, HandComputedPayloadAndValues) {
  OneBit c;
  EXPECT_EQ(c.name(), "onebit");
  EXPECT_EQ(c.spec(), "onebit");
  EXPECT_EQ(c.id(), CompressorId::kOneBit);
  const Bytes p = encode(c, kHand);
  // Header + two means + ceil(9/8) = 2 bit bytes.
  ASSERT_EQ(p.size(), kPayloadHeaderBytes + 8 + 2);
  EXPECT_EQ(p[5], 8);  // compressor id
  const PayloadHeader h = read_payload_header(p.data(), p.size());
  EXPECT_EQ(h.numel, 9u);
  EXPECT_EQ(h.count, 9u);
  EXPECT_EQ(h.values, ValueCoding::kNone);
  EXPECT_EQ(h.indices, IndexCoding::kImplicit);
  // Negatives -2, -4, -0.5: mean -6.5/3; non-negatives 1, 3, 0, 5, 2, 7: mean 18/6 = 3.
  EXPECT_EQ(f32_at(p, kPayloadHeaderBytes), static_cast<float>(-6.5 / 3.0));
  EXPECT_EQ(f32_at(p, kPayloadHeaderBytes + 4), 3.0f);
  // Bits 1 0 1 0 1 1 0 1 | 1 (0 is non-negative: bit 1), MSB first, zero padded.
  EXPECT_EQ(p[kPayloadHeaderBytes + 8], 0xAD);
  EXPECT_EQ(p[kPayloadHeaderBytes + 9], 0x80);
  const float mn = static_cast<float>(-6.5 / 3.0);
  const std::vector<float> want = {3, mn, 3, mn, 3, 3, mn, 3, 3};
  EXPECT_EQ(decode(c, p, 9), want);
}

TEST(OneBit, PreservesGroupSumsAndSigns) {
  PhiloxStream rng(11, 2);
  std::vector<float> x(10007);
  for (auto& v : x) v = 2.0f * rng.uniform() - 0.7f;
  OneBit c;
  const auto y = decode(c, encode(c, x), static_cast<int64_t>(x.size()));
  double sx = 0, sy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sx += x[i];
    sy += y[i];
    ASSERT_EQ(x[i] >= 0.0f, y[i] >= 0.0f) << i;
    ASSERT_NE(y[i], 0.0f) << i;
  }
  EXPECT_NEAR(sy, sx, 1e-6 * static_cast<double>(x.size()));
}

TEST(OneBit, OneSidedAndSpecialInputs) {
  OneBit c;
  // No negatives: mu_- = 0; -0.0 counts as non-negative (x >= 0).
  const Bytes p = encode(c, {2, -0.0f, 4});
  EXPECT_EQ(f32_at(p, kPayloadHeaderBytes), 0.0f);
  EXPECT_EQ(f32_at(p, kPayloadHeaderBytes + 4), 2.0f);
  EXPECT_EQ(p[kPayloadHeaderBytes + 8], 0xE0);
  EXPECT_EQ(decode(c, p, 3), (std::vector<float>{2, 2, 2}));
  const Bytes neg = encode(c, {-1, -3});
  EXPECT_EQ(decode(c, neg, 2), (std::vector<float>{-2, -2}));
  const Bytes empty = encode(c, {});
  EXPECT_EQ(empty.size(), kPayloadHeaderBytes + 8);
  EXPECT_TRUE(decode(c, empty, 0).empty());
  // Exactly 8 and 16 elements: no padding byte.
  EXPECT_EQ(encode(c, std::vector<float>(16, 1.0f)).size(), kPayloadHeaderBytes + 8 + 2);
  EXPECT_EQ(c.max_encoded_bytes(17), kPayloadHeaderBytes + 8 + 3);
}

TEST(OneBit, AccumulateAdds) {
  OneBit c;
  const Bytes p = encode(c, kHand);
  std::vector<float> acc = {10, 20, 30, 40, 50, 60, 70, 80, 90};
  c.decode(p.data(), p.size(), TensorView::of(acc.data(), 9), true);
  const float mn = static_cast<float>(-6.5 / 3.0);
  EXPECT_EQ(acc, (std::vector<float>{13, 20 + mn, 33, 40 + mn, 53, 63, 70 + mn, 83, 93}));
}

TEST(OneBit, EncodeRejectsNonFinite) {
  OneBit c;
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    std::vector<float> x = {1, bad, -2};
    Bytes buf(c.max_encoded_bytes(3));
    EXPECT_THROW(c.encode(TensorView::of(x.data(), 3), 0, buf.data(), buf.size()), NumericalError)
        << bad;
    // Inside a vectorised block of a longer tensor too, and a NaN with its sign bit set.
    for (const float b : {bad, -bad}) {
      std::vector<float> y(5000, 0.5f);
      y[2049 + 37] = b;
      Bytes big(c.max_encoded_bytes(5000));
      EXPECT_THROW(c.encode(TensorView::of(y.data(), 5000), 0, big.data(), big.size()),
                   NumericalError)
          << b;
    }
  }
}

TEST(OneBit, CorruptPayloadsAreRejected) {
  OneBit c;
  const Bytes good = encode(c, kHand);
  Bytes p = good;
  p.pop_back();
  expect_corrupt(c, p, 9, "truncated");
  p = good;
  p.pop_back();
  p[24] = static_cast<uint8_t>(p[24] - 1);  // body length agrees with the short payload
  expect_corrupt(c, p, 9, "body length 9");
  p = good;
  p[4] = 3;
  expect_corrupt(c, p, 9, "version 3");
  p = good;
  p[5] = static_cast<uint8_t>(CompressorId::kScaledSign);
  expect_corrupt(c, p, 9, "compressor id 3");
  p = good;
  p[16] = 8;  // count 8 of numel 9
  expect_corrupt(c, p, 9, "count 8, expected 9");
  p = good;
  p[6] = 1;
  expect_corrupt(c, p, 9, "value coding f32");
  p = good;
  set_f32(p, kPayloadHeaderBytes, std::numeric_limits<float>::quiet_NaN());
  expect_corrupt(c, p, 9, "mean of the negative elements is nan");
  p = good;
  set_f32(p, kPayloadHeaderBytes + 4, std::numeric_limits<float>::infinity());
  expect_corrupt(c, p, 9, "mean of the non-negative elements is inf");
  p = good;
  set_f32(p, kPayloadHeaderBytes, 0.5f);
  expect_corrupt(c, p, 9, "negative elements is 0.5");
  p = good;
  set_f32(p, kPayloadHeaderBytes + 4, -1.0f);
  expect_corrupt(c, p, 9, "non-negative elements is -1");
  p = good;
  p.back() |= 0x01;
  expect_corrupt(c, p, 9, "padding bits");
  expect_corrupt(c, good, 10, "numel 9, expected 10");
}

TEST(OneBit, FactoryBuildsIt) {
  auto c = make_compressor("onebit");
  EXPECT_EQ(c->id(), CompressorId::kOneBit);
  EXPECT_THROW(make_compressor("onebit:scale=1"), InvalidArgument);
  EXPECT_STREQ(compressor_id_name(CompressorId::kOneBit), "onebit");
}

}  // namespace
}  // namespace terse

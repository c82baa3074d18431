#include "terse/compress/wire_format.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "terse/compress/compressor.h"
#include "terse/core/error.h"

namespace terse {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes encode(const Compressor& c, std::vector<float> x) {
  Bytes buf(c.max_encoded_bytes(static_cast<int64_t>(x.size())));
  buf.resize(c.encode(TensorView::of(x.data(), static_cast<int64_t>(x.size())), 3, buf.data(),
                      buf.size()));
  return buf;
}

// Decoding p must throw CorruptData whose message contains `field`, and leave out untouched.
void expect_corrupt(const Compressor& c, const Bytes& p, int64_t n, const std::string& field) {
  std::vector<float> out(static_cast<size_t>(n), 7.0f);
  try {
    c.decode(p.data(), p.size(), TensorView::of(out.data(), n), false);
    ADD_FAILURE() << "no CorruptData for " << field;
  } catch (const CorruptData& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  }
  for (float v : out) ASSERT_EQ(v, 7.0f) << field;
}

void set_u64(Bytes& p, size_t off, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[off + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
}

// A top-k payload built by hand: 3 of 10 elements, f32 values, given index varint bytes.
Bytes topk_payload(const Bytes& index_bytes, uint64_t count = 3, uint64_t numel = 10) {
  Bytes p(kPayloadHeaderBytes);
  PayloadHeader h;
  h.compressor = CompressorId::kTopK;
  h.values = ValueCoding::kF32;
  h.indices = IndexCoding::kDeltaVarint;
  h.numel = numel;
  h.count = count;
  h.body_bytes = count * 4 + index_bytes.size();
  write_payload_header(h, p.data());
  for (uint64_t i = 0; i < count * 4; ++i) p.push_back(0);
  p.insert(p.end(), index_bytes.begin(), index_bytes.end());
  return p;
}

TEST(WireFormat, HeaderLayoutIsFixedLittleEndian) {
  auto c = make_compressor("topk:density=0.5");
  const Bytes p = encode(*c, {1, 2, 3, 4});
  ASSERT_GE(p.size(), kPayloadHeaderBytes);
  EXPECT_EQ(std::string(p.begin(), p.begin() + 4), "TRSP");
  EXPECT_EQ(p[4], kPayloadVersion);
  EXPECT_EQ(p[5], 1);   // topk
  EXPECT_EQ(p[6], 1);   // f32 values
  EXPECT_EQ(p[7], 1);   // delta varint indices
  EXPECT_EQ(p[8], 4);   // numel
  EXPECT_EQ(p[16], 2);  // count
  EXPECT_EQ(p[24], p.size() - kPayloadHeaderBytes);
  // Body: values 3, 4 then indices 2 (first), 1 (gap).
  EXPECT_EQ(p[p.size() - 2], 2);
  EXPECT_EQ(p[p.size() - 1], 1);
}

TEST(WireFormat, VarintRoundTripAndOverlong) {
  for (uint64_t v : {uint64_t{0}, uint64_t{127}, uint64_t{128}, uint64_t{300}, ~uint64_t{0}}) {
    uint8_t buf[10];
    const size_t n = write_varint(v, buf);
    EXPECT_EQ(n, varint_bytes(v));
    const uint8_t* p = buf;
    EXPECT_EQ(read_varint(&p, buf + n, "x"), v);
    EXPECT_EQ(p, buf + n);
  }
  const uint8_t overlong[] = {0x81, 0x00};
  const uint8_t* p = overlong;
  EXPECT_THROW(read_varint(&p, overlong + 2, "x"), CorruptData);
  const uint8_t eleven[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  p = eleven;
  EXPECT_THROW(read_varint(&p, eleven + 11, "x"), CorruptData);
  const uint8_t over64[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
  p = over64;
  EXPECT_THROW(read_varint(&p, over64 + 10, "x"), CorruptData);
}

TEST(WireFormat, HandBuiltTopKDecodes) {
  auto c = make_compressor("topk:density=0.3");
  const Bytes p = topk_payload({1, 3, 5});  // indices 1, 4, 9
  std::vector<float> out(10, 7.0f);
  c->decode(p.data(), p.size(), TensorView::of(out.data(), 10), false);
  EXPECT_EQ(out, std::vector<float>(10, 0.0f));
}

TEST(WireFormat, BadPayloadsThrowCorruptData) {
  auto c = make_compressor("topk:density=0.3");
  const Bytes good = topk_payload({1, 3, 5});
  Bytes p = good;
  p.pop_back();
  expect_corrupt(*c, p, 10, "truncated");
  p = good;
  p.push_back(0);
  expect_corrupt(*c, p, 10, "trailing");
  expect_corrupt(*c, Bytes(good.begin(), good.begin() + 10), 10, "shorter than");
  p = good;
  p[4] = 3;
  expect_corrupt(*c, p, 10, "version 3, expected 2");
  p[4] = 1;  // an older build's payload: its Rand-k seed meant other coordinates
  expect_corrupt(*c, p, 10, "version 1, expected 2: the payload comes from a terse build before");
  p = good;
  p[0] = 'X';
  expect_corrupt(*c, p, 10, "magic");
  p = good;
  p[5] = static_cast<uint8_t>(CompressorId::kRandK);
  expect_corrupt(*c, p, 10, "compressor id 2 (randk)");
  p = good;
  p[5] = 99;
  expect_corrupt(*c, p, 10, "compressor id 99");
  p = good;
  p[6] = static_cast<uint8_t>(ValueCoding::kF16);
  expect_corrupt(*c, p, 10, "value coding f16");
  expect_corrupt(*c, good, 11, "numel 10, expected 11");
  expect_corrupt(*c, topk_payload({1, 3, 6}), 10, "out of range");
  expect_corrupt(*c, topk_payload({10, 1, 1}), 10, "out of range");
  expect_corrupt(*c, topk_payload({1, 0, 5}), 10, "does not increase");
  expect_corrupt(*c, topk_payload({1, 0x83, 0x00, 5}), 10, "overlong");
  expect_corrupt(*c, topk_payload({1, 3, 5, 1}), 10, "bytes left");
  expect_corrupt(*c, topk_payload({1, 3}), 10, "cannot fit");
  expect_corrupt(*c, topk_payload({1, 3, 0x83}), 10, "runs past the end");
  p = topk_payload({1, 3, 5});
  set_u64(p, 16, 11);
  expect_corrupt(*c, p, 10, "count 11 exceeds numel 10");
  p = topk_payload({1, 3, 5});
  set_u64(p, 16, uint64_t{1} << 40);  // huge count must not allocate
  set_u64(p, 8, uint64_t{1} << 41);
  expect_corrupt(*c, p, 10, "numel");
}

TEST(WireFormat, DenseCompressorsRejectBadBodies) {
  auto sign = make_compressor("sign");
  Bytes p = encode(*sign, {1, -1, 1});
  p.back() |= 0x01;  // a padding bit
  expect_corrupt(*sign, p, 3, "padding");
  p = encode(*sign, {1, -1, 1});
  p[kPayloadHeaderBytes + 3] = 0xff;  // scale NaN
  expect_corrupt(*sign, p, 3, "sign scale");

  auto tern = make_compressor("terngrad");
  p = encode(*tern, {1, -1, 1, 0.5f});
  p[kPayloadHeaderBytes + 4] = 0xC0;  // code 3
  expect_corrupt(*tern, p, 4, "code 3");

  auto q = make_compressor("qsgd:levels=5");  // 1 + 3 bits per element, level 6, 7 invalid
  p = encode(*q, {1, -1, 1, 0.5f});
  p[kPayloadHeaderBytes + 8] = 0x70;  // first field 0111: level 7
  expect_corrupt(*q, p, 4, "level 7");
  p = encode(*q, {1, -1, 1, 0.5f});
  p[kPayloadHeaderBytes] = 6;
  expect_corrupt(*q, p, 4, "qsgd levels 6, expected 5");
  expect_corrupt(*make_compressor("qsgd:levels=7"), encode(*q, {1, 2}), 2, "levels 5");

  auto r = make_compressor("randk:density=0.5");
  p = encode(*r, {1, 2, 3, 4});
  set_u64(p, 16, 3);
  expect_corrupt(*r, p, 4, "count 3, expected 2");
  expect_corrupt(*make_compressor("randk:density=0.5,send_indices=true"), encode(*r, {1, 2, 3, 4}),
                 4, "index coding implicit");

  auto f = make_compressor("fp16");
  p = encode(*f, {1, 2, 3});
  p.pop_back();
  set_u64(p, 24, 5);
  expect_corrupt(*f, p, 3, "body length 5");
}

}  // namespace
}  // namespace terse

namespace terse {
namespace {

// Every single-byte change and every truncation of a valid payload either decodes or throws
// CorruptData (never another exception); header bytes other than numel never decode.
TEST(WireFormat, EveryByteFlipIsDecodedOrRejected) {
  for (const auto& name : compressor_names()) {
    auto c = make_compressor(name);
    const Bytes good = encode(*c, {0.5f, -1.5f, 2.0f, 0.0f, -0.25f, 3.0f, 1.0f, -2.0f, 0.75f});
    std::vector<float> out(9);
    for (size_t i = 0; i < good.size(); ++i) {
      for (uint8_t flip : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}}) {
        Bytes p = good;
        p[i] ^= flip;
        try {
          c->decode(p.data(), p.size(), TensorView::of(out.data(), 9), false);
          EXPECT_GE(i, 8u) << name << " decoded a payload with header byte " << i << " changed";
        } catch (const CorruptData&) {
        }
      }
      try {
        c->decode(good.data(), i, TensorView::of(out.data(), 9), false);
        ADD_FAILURE() << name << " decoded a payload truncated to " << i << " bytes";
      } catch (const CorruptData&) {
      }
    }
  }
}

}  // namespace
}  // namespace terse

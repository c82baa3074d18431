#include "terse/data/idx_array.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "terse/core/error.h"
#include "terse/data/gzip_reader.h"

namespace terse {
namespace {

IdxArray small_images() {
  IdxArray a;
  a.magic = kIdxMagicImages;
  a.dims = {3, 2, 4};
  for (int i = 0; i < 24; ++i) a.data.push_back(static_cast<uint8_t>(i * 10));
  return a;
}

// Runs `f`, expects CorruptData, and returns its message.
template <typename F>
std::string corrupt_message(F&& f) {
  try {
    f();
  } catch (const CorruptData& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected CorruptData, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected CorruptData, nothing was thrown";
  return "";
}

std::string decode_msg(const std::vector<uint8_t>& b) {
  return corrupt_message([&] { decode_idx(b.data(), b.size(), "test.idx"); });
}

std::string decode_gz_msg(const std::vector<uint8_t>& b) {
  return corrupt_message([&] { decode_idx_gz(b.data(), b.size(), "test.idx.gz"); });
}

std::vector<uint8_t> gz(const std::vector<uint8_t>& raw) {
  return gzip_compress(raw.data(), raw.size());
}

TEST(IdxArray, EncodeLayoutIsBigEndianIdx) {
  const std::vector<uint8_t> b = encode_idx(small_images());
  ASSERT_EQ(b.size(), 16u + 24u);
  const std::vector<uint8_t> head(b.begin(), b.begin() + 16);
  EXPECT_EQ(head, (std::vector<uint8_t>{0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 4}));
  EXPECT_EQ(b[16], 0);
  EXPECT_EQ(b[17], 10);
  EXPECT_EQ(b[39], 230);
}

TEST(IdxArray, RoundTripImagesAndLabels) {
  const IdxArray img = small_images();
  const std::vector<uint8_t> b = encode_idx(img);
  EXPECT_EQ(decode_idx(b.data(), b.size(), "x"), img);
  IdxArray lab;
  lab.magic = kIdxMagicLabels;
  lab.dims = {5};
  lab.data = {9, 0, 0, 3, 0};
  const std::vector<uint8_t> lb = encode_idx(lab);
  EXPECT_EQ(lb.size(), 8u + 5u);
  const IdxArray back = decode_idx(lb.data(), lb.size(), "x");
  EXPECT_EQ(back, lab);
  EXPECT_EQ(back.numel(), 5u);
}

TEST(IdxArray, GzipRoundTrip) {
  const IdxArray img = small_images();
  const std::vector<uint8_t> z = gz(encode_idx(img));
  EXPECT_EQ(z[0], 0x1f);
  EXPECT_EQ(z[1], 0x8b);
  EXPECT_EQ(decode_idx_gz(z.data(), z.size(), "x"), img);
}

TEST(IdxArray, BadMagicNamesFileAndValue) {
  std::vector<uint8_t> b = encode_idx(small_images());
  b[0] = 0x1f;
  const std::string m = decode_msg(b);
  EXPECT_NE(m.find("test.idx"), std::string::npos) << m;
  EXPECT_NE(m.find("bad magic 0x1f000803"), std::string::npos) << m;
  EXPECT_NE(m.find("0x00000803"), std::string::npos) << m;
}

TEST(IdxArray, BadTypeCode) {
  std::vector<uint8_t> b = encode_idx(small_images());
  b[2] = 0x0d;  // f32 in the IDX spec
  const std::string m = decode_msg(b);
  EXPECT_NE(m.find("type code 0xd"), std::string::npos) << m;
  EXPECT_NE(m.find("expected 0x08"), std::string::npos) << m;
}

TEST(IdxArray, UnsupportedRank) {
  std::vector<uint8_t> b = encode_idx(small_images());
  b[3] = 2;
  const std::string m = decode_msg(b);
  EXPECT_NE(m.find("rank 2"), std::string::npos) << m;
  EXPECT_NE(m.find("expected 3 for images, 1 for labels"), std::string::npos) << m;
}

TEST(IdxArray, TruncatedMagicHeaderAndPayload) {
  const std::vector<uint8_t> b = encode_idx(small_images());
  EXPECT_NE(decode_msg({b.begin(), b.begin() + 3}).find("shorter than its 4-byte magic"),
            std::string::npos);
  EXPECT_NE(decode_msg({b.begin(), b.begin() + 10}).find("shorter than its 16-byte header"),
            std::string::npos);
  const std::string m = decode_msg({b.begin(), b.end() - 1});
  EXPECT_NE(m.find("truncated: payload has 23 bytes, its header declares 24"), std::string::npos)
      << m;
}

TEST(IdxArray, TrailingBytes) {
  std::vector<uint8_t> b = encode_idx(small_images());
  b.push_back(7);
  b.push_back(7);
  const std::string m = decode_msg(b);
  EXPECT_NE(m.find("2 trailing bytes"), std::string::npos) << m;
}

TEST(IdxArray, ZeroDimension) {
  std::vector<uint8_t> b = encode_idx(small_images());
  b[11] = 0;  // dims[1] = 0
  const std::string m = decode_msg(b);
  EXPECT_NE(m.find("dimension 1 is 0"), std::string::npos) << m;
}

TEST(IdxArray, DimensionsOverflow) {
  // 0xffffffff^3 overflows 64 bits; must be rejected before any allocation.
  std::vector<uint8_t> b = {0,    0,    8,    3,    0xff, 0xff, 0xff, 0xff,
                            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  std::string m = decode_msg(b);
  EXPECT_NE(m.find("larger than the limit"), std::string::npos) << m;
  // Just over a caller-given limit.
  b = encode_idx(small_images());
  m = corrupt_message([&] { decode_idx(b.data(), b.size(), "small", 16 + 23); });
  EXPECT_NE(m.find("dimension 2 = 4"), std::string::npos) << m;
  EXPECT_NO_THROW(decode_idx(b.data(), b.size(), "small", 16 + 24));
}

TEST(IdxArray, CorruptGzip) {
  std::vector<uint8_t> z = gz(encode_idx(small_images()));
  std::vector<uint8_t> bad = z;
  bad[12] ^= 0xff;  // inside the deflate data
  std::string m = decode_gz_msg(bad);
  EXPECT_NE(m.find("test.idx.gz"), std::string::npos) << m;
  bad = z;
  bad[0] = 0x00;  // not a gzip header
  m = decode_gz_msg(bad);
  EXPECT_NE(m.find("is corrupt at compressed byte"), std::string::npos) << m;
}

TEST(IdxArray, TruncatedGzip) {
  const std::vector<uint8_t> z = gz(encode_idx(small_images()));
  const std::string m = decode_gz_msg({z.begin(), z.end() - 5});  // CRC/size trailer cut
  EXPECT_NE(m.find("truncated"), std::string::npos) << m;
  EXPECT_NE(decode_gz_msg({z.begin(), z.begin() + 2}).find("truncated"), std::string::npos);
}

TEST(IdxArray, BytesAfterGzipStream) {
  std::vector<uint8_t> z = gz(encode_idx(small_images()));
  z.push_back(0);
  const std::string m = decode_gz_msg(z);
  EXPECT_NE(m.find("1 bytes after the end of its compressed stream"), std::string::npos) << m;
}

TEST(IdxArray, GzipPayloadTruncatedAndTrailing) {
  std::vector<uint8_t> raw = encode_idx(small_images());
  raw.pop_back();
  EXPECT_NE(decode_gz_msg(gz(raw)).find("payload has 23 bytes, its header declares 24"),
            std::string::npos);
  raw = encode_idx(small_images());
  raw.push_back(1);
  EXPECT_NE(decode_gz_msg(gz(raw)).find("decompresses to more than the 40 bytes"),
            std::string::npos);
}

TEST(IdxArray, DecompressionBombStopsAtDeclaredSize) {
  // A 64 MiB stream of zeros behind a header that declares 1 label: the reader must stop after
  // 9 decompressed bytes instead of inflating everything.
  std::vector<uint8_t> raw(size_t{64} << 20, 0);
  const uint8_t head[9] = {0, 0, 8, 1, 0, 0, 0, 1, 5};
  std::copy(head, head + 9, raw.begin());
  const std::vector<uint8_t> z = gz(raw);
  EXPECT_LT(z.size(), size_t{1} << 20);
  const std::string m = decode_gz_msg(z);
  EXPECT_NE(m.find("decompresses to more than the 9 bytes its header declares"), std::string::npos)
      << m;
  // gunzip() with a cap rejects it as well.
  const std::string m2 =
      corrupt_message([&] { gunzip(z.data(), z.size(), size_t{1} << 20, "bomb.gz"); });
  EXPECT_NE(m2.find("decompresses to more than 1048576 bytes"), std::string::npos) << m2;
}

TEST(IdxArray, GunzipExactCap) {
  const std::vector<uint8_t> raw = encode_idx(small_images());
  const std::vector<uint8_t> z = gz(raw);
  EXPECT_EQ(gunzip(z.data(), z.size(), raw.size(), "x"), raw);
  EXPECT_THROW(gunzip(z.data(), z.size(), raw.size() - 1, "x"), CorruptData);
}

TEST(IdxArray, EncodeRejectsInconsistentArrays) {
  IdxArray a = small_images();
  a.data.pop_back();
  EXPECT_THROW(encode_idx(a), InvalidArgument);
  a = small_images();
  a.magic = 0x00000802;
  EXPECT_THROW(encode_idx(a), InvalidArgument);
}

}  // namespace
}  // namespace terse

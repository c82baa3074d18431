#include "terse/data/text_corpus.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "terse/core/error.h"
#include "terse/data/gzip_reader.h"

namespace terse {
namespace {

namespace fs = std::filesystem;

std::string scratch_file(const std::string& name, const std::vector<uint8_t>& bytes) {
  const fs::path dir = fs::path(TERSE_BINARY_DIR) / "test_scratch" / "text_corpus";
  fs::create_directories(dir);
  const fs::path path = dir / name;
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  return path.string();
}

std::vector<uint8_t> text_of(size_t n) {
  const std::string base = "the quick brown fox jumps over the lazy dog. ";
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(base[i % base.size()]);
  return out;
}

template <typename Fn>
std::string message_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no exception)";
}

TEST(TextCorpus, PlainSplitsNinetyTen) {
  const std::vector<uint8_t> text = text_of(1005);
  const TextCorpus c = TextCorpus::from_bytes(text.data(), text.size(), "mem.txt");
  ASSERT_EQ(c.train().size(), 904u);  // floor(1005 * 0.9)
  ASSERT_EQ(c.validation().size(), 101u);
  EXPECT_EQ(c.size(), 1005);
  EXPECT_TRUE(std::equal(c.train().begin(), c.train().end(), text.begin()));
  EXPECT_TRUE(std::equal(c.validation().begin(), c.validation().end(), text.begin() + 904));
  EXPECT_EQ(c.source(), "mem.txt");
}

TEST(TextCorpus, GzipFileEqualsPlainFile) {
  const std::vector<uint8_t> text = text_of(4000);
  const std::vector<uint8_t> z = gzip_compress(text.data(), text.size());
  const TextCorpus plain = TextCorpus::load(scratch_file("a.txt", text), 65);
  const TextCorpus gz = TextCorpus::load(scratch_file("a.txt.gz", z), 65);
  EXPECT_EQ(plain.train(), gz.train());
  EXPECT_EQ(plain.validation(), gz.validation());
  EXPECT_EQ(gz.train().size(), 3600u);
  EXPECT_EQ(gz.validation().size(), 400u);
}

TEST(TextCorpus, MissingFileSaysHowToGetIt) {
  const std::string msg = message_of([] { TextCorpus::load("/nonexistent/jargon.txt.gz"); });
  EXPECT_NE(msg.find("/nonexistent/jargon.txt.gz"), std::string::npos) << msg;
  EXPECT_NE(msg.find("apt-get install jargon-text"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--text"), std::string::npos) << msg;
  EXPECT_THROW(TextCorpus::load("/nonexistent/x"), InvalidArgument);
  EXPECT_THROW(TextCorpus::check_file("/nonexistent/x"), InvalidArgument);
  EXPECT_THROW(TextCorpus::check_file(fs::temp_directory_path().string()), InvalidArgument);
}

TEST(TextCorpus, EmptyTooShortAndBinaryAreRejected) {
  const std::string empty = scratch_file("empty.txt", {});
  EXPECT_THROW(TextCorpus::load(empty), InvalidArgument);
  EXPECT_NE(message_of([&] { TextCorpus::load(empty); }).find("is empty"), std::string::npos);

  // 100 bytes: 90 train, 10 validation; a window of 65 does not fit the validation split.
  const std::vector<uint8_t> small = text_of(100);
  const std::string msg =
      message_of([&] { TextCorpus::from_bytes(small.data(), small.size(), "small.txt", 65); });
  EXPECT_NE(msg.find("small.txt holds 100 bytes: 90 for training and 10 for validation"),
            std::string::npos)
      << msg;
  EXPECT_NO_THROW(TextCorpus::from_bytes(small.data(), small.size(), "small.txt", 10));
  EXPECT_THROW(TextCorpus::from_bytes(small.data(), small.size(), "small.txt", 11),
               InvalidArgument);
  EXPECT_THROW(TextCorpus::from_bytes(small.data(), small.size(), "small.txt", 0), InvalidArgument);

  std::vector<uint8_t> binary = text_of(200);
  binary[150] = 0;
  const std::string bin_msg =
      message_of([&] { TextCorpus::from_bytes(binary.data(), binary.size(), "bin.dat"); });
  EXPECT_NE(bin_msg.find("NUL byte at offset 150"), std::string::npos) << bin_msg;
  EXPECT_THROW(TextCorpus::from_bytes(binary.data(), binary.size(), "bin.dat"), CorruptData);
}

TEST(TextCorpus, CorruptOrTruncatedGzipIsCorruptData) {
  const std::vector<uint8_t> text = text_of(5000);
  std::vector<uint8_t> z = gzip_compress(text.data(), text.size());
  std::vector<uint8_t> truncated(z.begin(), z.begin() + static_cast<std::ptrdiff_t>(z.size() / 2));
  EXPECT_THROW(TextCorpus::load(scratch_file("trunc.gz", truncated)), CorruptData);
  std::vector<uint8_t> flipped = z;
  for (size_t i = 12; i < flipped.size() - 8; i += 3) flipped[i] ^= 0x5a;
  EXPECT_THROW(TextCorpus::load(scratch_file("flipped.gz", flipped)), CorruptData);
}

TEST(TextCorpus, DecompressionBombStopsAtTheBound) {
  // 65 MiB of 'a' compresses to ~65 KB; the reader must stop at kMaxBytes, not inflate it all.
  const std::vector<uint8_t> big(TextCorpus::kMaxBytes + (size_t{1} << 20), 'a');
  const std::vector<uint8_t> z = gzip_compress(big.data(), big.size());
  ASSERT_LT(z.size(), size_t{1} << 20);
  const std::string msg =
      message_of([&] { TextCorpus::from_bytes(z.data(), z.size(), "bomb.gz"); });
  EXPECT_NE(msg.find("bomb.gz decompresses to more than 67108864 bytes"), std::string::npos) << msg;
}

TEST(TextCorpus, JargonFileWhenInstalled) {
  if (!fs::exists(TextCorpus::kDefaultPath)) GTEST_SKIP() << "jargon-text is not installed";
  const TextCorpus c = TextCorpus::load();
  EXPECT_EQ(c.size(), 1681817);
  EXPECT_EQ(c.train().size(), 1513635u);
  EXPECT_EQ(c.validation().size(), 168182u);
}

}  // namespace
}  // namespace terse

#include "terse/data/text_corpus.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <system_error>

#include "terse/core/check.h"
#include "terse/data/gzip_reader.h"

namespace terse {
namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

constexpr const char* kHowToGet =
    "install the Debian package jargon-text (apt-get install jargon-text; on images that "
    "exclude /usr/share/doc, also remove that path-exclude from /etc/dpkg/dpkg.cfg.d/ and "
    "reinstall) or pass --text PATH with a .gz or plain text file";

[[noreturn]] void throw_missing(const std::string& path) {
  TERSE_THROW(InvalidArgument, "text corpus ", path, " not found: ", kHowToGet);
}

}  // namespace

void TextCorpus::check_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw_missing(path);
  TERSE_CHECK(std::filesystem::is_regular_file(path, ec), InvalidArgument, "text corpus ", path,
              " is not a regular file; pass --text with a .gz or plain text file");
}

TextCorpus TextCorpus::load(const std::string& path, int64_t min_split_bytes) {
  check_file(path);
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) throw_missing(path);
    TERSE_THROW(InvalidArgument, "cannot open text corpus ", path, ": ", std::strerror(err),
                "; check its permissions or pass --text PATH");
  }
  TERSE_CHECK(std::fseek(f.get(), 0, SEEK_END) == 0, InvalidArgument, "cannot seek in ", path, ": ",
              std::strerror(errno), "; it must be a regular file");
  const long size = std::ftell(f.get());
  TERSE_CHECK(size >= 0 && static_cast<unsigned long>(size) <= kMaxBytes, CorruptData,
              "text corpus ", path, " is ", size, " bytes on disk (at most ", kMaxBytes,
              " accepted); pass a smaller text with --text");
  std::rewind(f.get());
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  const size_t got = bytes.empty() ? 0 : std::fread(bytes.data(), 1, bytes.size(), f.get());
  TERSE_CHECK(got == bytes.size(), InvalidArgument, "could read only ", got, " of ", size,
              " bytes of text corpus ", path, ": ", std::strerror(errno),
              "; check the file and its permissions");
  return from_bytes(bytes.data(), bytes.size(), path, min_split_bytes);
}

TextCorpus TextCorpus::from_bytes(const uint8_t* data, size_t size, const std::string& what,
                                  int64_t min_split_bytes) {
  TERSE_CHECK(min_split_bytes >= 1, InvalidArgument, "min_split_bytes must be >= 1, got ",
              min_split_bytes, "; pass the bytes one window needs (context + 1)");
  TERSE_CHECK(data != nullptr || size == 0, InvalidArgument, "text corpus ", what,
              ": null buffer of ", size, " bytes; pass a valid buffer");
  const bool gzipped = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  std::vector<uint8_t> text =
      gzipped ? gunzip(data, size, kMaxBytes, what) : std::vector<uint8_t>(data, data + size);
  TERSE_CHECK(text.size() <= kMaxBytes, CorruptData, "text corpus ", what, " holds ", text.size(),
              " bytes (at most ", kMaxBytes, " accepted); pass a smaller text with --text");
  TERSE_CHECK(!text.empty(), InvalidArgument, "text corpus ", what,
              " is empty (0 bytes of text); pass a non-empty text file with --text");
  const void* nul = std::memchr(text.data(), 0, text.size());
  TERSE_CHECK(nul == nullptr, CorruptData, "text corpus ", what, " has a NUL byte at offset ",
              static_cast<const uint8_t*>(nul) - text.data(),
              (gzipped ? " of its decompressed text" : ""),
              ": it is a binary file, not text; pass a text file (plain or .gz) with --text");
  const size_t n_train = text.size() / 10 * kTrainTenths + text.size() % 10 * kTrainTenths / 10;
  const size_t n_val = text.size() - n_train;
  const auto need = static_cast<size_t>(min_split_bytes);
  TERSE_CHECK(n_train >= need && n_val >= need, InvalidArgument, "text corpus ", what, " holds ",
              text.size(), " bytes: ", n_train, " for training and ", n_val,
              " for validation, but each needs at least ", need,
              " (one window of context + 1 bytes); pass a longer text (at least ", need * 10,
              " bytes) or a shorter --context");
  TextCorpus corpus;
  corpus.source_ = what;
  corpus.validation_.assign(text.begin() + static_cast<std::ptrdiff_t>(n_train), text.end());
  text.resize(n_train);
  corpus.train_ = std::move(text);
  return corpus;
}

}  // namespace terse

#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace terse {

// A byte-level text corpus for language modelling, split into train (the first 90% of the
// bytes) and validation (the last 10%). The default is the Jargon File (public domain, ~1.68 MB
// of English prose), shipped by the Debian package jargon-text; docs/data.md says why.
//
// A file whose first two bytes are the gzip magic (1f 8b) is decompressed through the bounded
// GzipReader (at most kMaxBytes out, so a decompression bomb cannot allocate more); any other
// file is read as plain bytes. Validation: the file exists and is a readable regular file; the
// text is not empty, has no NUL byte (a binary file is not text), holds at most kMaxBytes, and
// each split holds at least `min_split_bytes` (a language model needs one window of context + 1
// bytes in each). Missing or unreadable files and too-short texts throw InvalidArgument; a
// corrupt gzip stream, an oversized or binary file throws CorruptData. Messages name the file,
// the value seen and what to do.
class TextCorpus {
 public:
  static constexpr const char* kDefaultPath = "/usr/share/doc/jargon-text/jargon.txt.gz";
  // Largest text accepted, after decompression; also the largest file read. 64 MiB is ~40x the
  // Jargon File and still a small allocation.
  static constexpr size_t kMaxBytes = size_t{64} << 20;
  // Train share of the bytes: train = floor(size * 9 / 10), validation = the rest.
  static constexpr int kTrainTenths = 9;

  // Reads and splits `path`.
  static TextCorpus load(const std::string& path = kDefaultPath, int64_t min_split_bytes = 1);
  // Decodes and splits an in-memory file (gzip or plain); `what` names it in messages.
  static TextCorpus from_bytes(const uint8_t* data, size_t size, const std::string& what,
                               int64_t min_split_bytes = 1);
  // Throws InvalidArgument, naming the file and how to get it, unless `path` is an existing
  // regular file. Cheap: a launcher checks this before starting any rank.
  static void check_file(const std::string& path);

  const std::vector<uint8_t>& train() const { return train_; }
  const std::vector<uint8_t>& validation() const { return validation_; }
  // Bytes of text in all (train + validation).
  int64_t size() const {
    return static_cast<int64_t>(train_.size()) + static_cast<int64_t>(validation_.size());
  }
  const std::string& source() const { return source_; }

 private:
  std::vector<uint8_t> train_, validation_;
  std::string source_;
};

}  // namespace terse

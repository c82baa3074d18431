#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace terse {

// Streaming gzip decoder over an in-memory buffer of untrusted bytes. The caller pulls exactly
// as many bytes as it expects, so a decompression bomb never allocates more than the caller
// asked for. Corrupt or truncated streams, and bytes after the end of the gzip member, throw
// CorruptData naming `what` (usually the file path).
class GzipReader {
 public:
  GzipReader(const uint8_t* data, size_t size, std::string what);
  ~GzipReader();
  GzipReader(const GzipReader&) = delete;
  GzipReader& operator=(const GzipReader&) = delete;

  // Decompresses up to `n` bytes into `dst`; returns fewer only when the stream has ended.
  size_t read(uint8_t* dst, size_t n);
  // True once the end of the gzip stream has been reached (and validated).
  bool ended() const { return ended_; }
  size_t bytes_out() const { return bytes_out_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  const uint8_t* data_;
  size_t size_;
  size_t consumed_ = 0;
  size_t bytes_out_ = 0;
  bool ended_ = false;
  std::string what_;
};

// Decompresses a whole gzip buffer; more than `max_bytes` of output throws CorruptData.
std::vector<uint8_t> gunzip(const uint8_t* data, size_t size, size_t max_bytes,
                            const std::string& what);

// gzip-compresses `data` (level 6); used to write test fixtures and fuzz seeds.
std::vector<uint8_t> gzip_compress(const uint8_t* data, size_t size);

}  // namespace terse

#include "terse/data/gzip_reader.h"

#include <zlib.h>

#include <algorithm>
#include <limits>
#include <new>
#include <utility>

#include "terse/core/check.h"

namespace terse {

struct GzipReader::Impl {
  z_stream strm{};
};

GzipReader::GzipReader(const uint8_t* data, size_t size, std::string what)
    : impl_(std::make_unique<Impl>()), data_(data), size_(size), what_(std::move(what)) {
  TERSE_CHECK(data != nullptr || size == 0, InvalidArgument, "GzipReader for ", what_,
              " got a null buffer of ", size, " bytes; pass a valid buffer");
  // 16 + MAX_WBITS: accept the gzip wrapper only (not raw zlib), so a wrong file type is caught.
  const int rc = inflateInit2(&impl_->strm, 16 + MAX_WBITS);
  if (rc == Z_MEM_ERROR) throw std::bad_alloc();
  TERSE_CHECK(rc == Z_OK, InvalidArgument, "zlib inflateInit2 failed with code ", rc, " for ",
              what_, "; the zlib library is broken or mismatched");
}

GzipReader::~GzipReader() { inflateEnd(&impl_->strm); }

size_t GzipReader::read(uint8_t* dst, size_t n) {
  z_stream& s = impl_->strm;
  size_t produced = 0;
  constexpr size_t kChunk = std::numeric_limits<uInt>::max();
  while (produced < n && !ended_) {
    // zlib counts in uInt; feed input and output in chunks it can represent.
    const size_t in_left = size_ - consumed_;
    const uInt in_now = static_cast<uInt>(std::min(in_left, kChunk));
    const uInt out_now = static_cast<uInt>(std::min(n - produced, kChunk));
    s.next_in = const_cast<Bytef*>(data_ + consumed_);  // zlib's API is not const-correct
    s.avail_in = in_now;
    s.next_out = dst + produced;
    s.avail_out = out_now;
    const int rc = inflate(&s, Z_NO_FLUSH);
    consumed_ += in_now - s.avail_in;
    const size_t got = out_now - s.avail_out;
    produced += got;
    bytes_out_ += got;
    if (rc == Z_STREAM_END) {
      ended_ = true;
      TERSE_CHECK(consumed_ == size_, CorruptData, "gzip file ", what_, " has ", size_ - consumed_,
                  " bytes after the end of its compressed stream (expected 0); the file is "
                  "corrupt or was concatenated: download it again");
      break;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_MEM_ERROR) throw std::bad_alloc();
    if (rc == Z_BUF_ERROR && consumed_ == size_) {
      TERSE_THROW(CorruptData, "gzip file ", what_,
                  " is truncated: its compressed stream ends after ", size_, " bytes (", bytes_out_,
                  " bytes decompressed) without an end marker; download it again");
    }
    TERSE_THROW(CorruptData, "gzip file ", what_, " is corrupt at compressed byte ", consumed_,
                " of ", size_, ": zlib error ", rc, " (", s.msg ? s.msg : "no message",
                "); download it again");
  }
  return produced;
}

std::vector<uint8_t> gunzip(const uint8_t* data, size_t size, size_t max_bytes,
                            const std::string& what) {
  GzipReader reader(data, size, what);
  std::vector<uint8_t> out;
  while (!reader.ended()) {
    const size_t have = out.size();
    // Geometric growth from 64 KiB keeps memory within twice the output; one byte beyond the
    // cap tells "exactly max_bytes" from "more than max_bytes".
    const size_t want = std::min(std::max(have, size_t{1} << 16), max_bytes + 1 - have);
    out.resize(have + want);
    const size_t got = reader.read(out.data() + have, want);
    out.resize(have + got);
    TERSE_CHECK(out.size() <= max_bytes, CorruptData, "gzip file ", what,
                " decompresses to more than ", max_bytes,
                " bytes (the limit for this file); it is corrupt or not the expected file");
  }
  return out;
}

std::vector<uint8_t> gzip_compress(const uint8_t* data, size_t size) {
  TERSE_CHECK(data != nullptr || size == 0, InvalidArgument, "gzip_compress got a null buffer of ",
              size, " bytes; pass a valid buffer");
  TERSE_CHECK(size <= std::numeric_limits<uInt>::max(), InvalidArgument, "gzip_compress input of ",
              size, " bytes is larger than zlib's single-call limit; compress it in parts");
  z_stream s{};
  const int rc = deflateInit2(&s, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  if (rc == Z_MEM_ERROR) throw std::bad_alloc();
  TERSE_CHECK(rc == Z_OK, InvalidArgument, "zlib deflateInit2 failed with code ", rc,
              "; the zlib library is broken or mismatched");
  std::vector<uint8_t> out(deflateBound(&s, static_cast<uLong>(size)) + 32);
  s.next_in = const_cast<Bytef*>(data);  // zlib's API is not const-correct
  s.avail_in = static_cast<uInt>(size);
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  const int end = deflate(&s, Z_FINISH);
  const size_t written = out.size() - s.avail_out;
  deflateEnd(&s);
  TERSE_CHECK(end == Z_STREAM_END, InvalidArgument, "zlib deflate did not finish (code ", end,
              ") for ", size, " bytes; the zlib library is broken or mismatched");
  out.resize(written);
  return out;
}

}  // namespace terse

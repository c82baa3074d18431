#include "terse/data/idx_array.h"

#include <algorithm>
#include <cstring>
#include <iomanip>
#include <sstream>

#include "terse/core/check.h"
#include "terse/data/gzip_reader.h"

namespace terse {
namespace {

uint32_t load_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

void store_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

std::string hex32(uint32_t v) {
  std::ostringstream os;
  os << "0x" << std::hex << std::setw(8) << std::setfill('0') << v;
  return os.str();
}

// Validates the 4-byte magic and returns the rank it declares.
size_t parse_magic(const uint8_t* p, const std::string& what) {
  const uint32_t magic = load_be32(p);
  TERSE_CHECK(p[0] == 0 && p[1] == 0, CorruptData, "IDX file ", what, ": bad magic ", hex32(magic),
              " (its first two bytes must be zero; expected ", hex32(kIdxMagicImages), " or ",
              hex32(kIdxMagicLabels), "); this is not an IDX file: download it again");
  TERSE_CHECK(p[2] == kIdxTypeU8, CorruptData, "IDX file ", what, ": type code 0x", std::hex,
              int{p[2]}, std::dec, " in magic ", hex32(magic), " is not supported (expected 0x08, ",
              "unsigned byte); Fashion-MNIST files are u8: download them again");
  TERSE_CHECK(magic == kIdxMagicImages || magic == kIdxMagicLabels, CorruptData, "IDX file ", what,
              ": rank ", int{p[3]}, " in magic ", hex32(magic),
              " is not supported (expected 3 for images, 1 for labels)");
  return p[3];
}

// Validates the dimensions of a full header and returns the total file size they declare.
size_t declared_size(const uint8_t* header, size_t rank, const std::string& what,
                     size_t max_bytes) {
  const size_t header_bytes = 4 + 4 * rank;
  TERSE_CHECK(max_bytes >= header_bytes, InvalidArgument, "IDX size limit for ", what, " is ",
              max_bytes, " bytes, smaller than its ", header_bytes, "-byte header; raise it");
  size_t payload = 1;
  for (size_t i = 0; i < rank; ++i) {
    const uint32_t d = load_be32(header + 4 + 4 * i);
    TERSE_CHECK(d != 0, CorruptData, "IDX file ", what, ": dimension ", i, " is 0 (expected >= 1)",
                "; the file is corrupt: download it again");
    // Division instead of multiplication: cannot overflow, and caps the size before allocating.
    TERSE_CHECK(d <= (max_bytes - header_bytes) / payload, CorruptData, "IDX file ", what,
                ": dimension ", i, " = ", d, " makes the payload larger than the limit of ",
                max_bytes - header_bytes, " bytes; the header is corrupt: download it again");
    payload *= d;
  }
  return header_bytes + payload;
}

}  // namespace

size_t IdxArray::numel() const {
  size_t n = dims.empty() ? 0 : 1;
  for (uint32_t d : dims) n *= d;
  return n;
}

IdxArray decode_idx(const uint8_t* data, size_t size, const std::string& what, size_t max_bytes) {
  TERSE_CHECK(data != nullptr || size == 0, InvalidArgument, "decode_idx for ", what,
              " got a null buffer of ", size, " bytes; pass a valid buffer");
  TERSE_CHECK(size >= 4, CorruptData, "IDX file ", what, " is truncated: ", size,
              " bytes, shorter than its 4-byte magic; download it again");
  const size_t rank = parse_magic(data, what);
  const size_t header_bytes = 4 + 4 * rank;
  TERSE_CHECK(size >= header_bytes, CorruptData, "IDX file ", what, " is truncated: ", size,
              " bytes, shorter than its ", header_bytes, "-byte header (rank ", rank,
              "); download it again");
  const size_t total = declared_size(data, rank, what, max_bytes);
  TERSE_CHECK(size >= total, CorruptData, "IDX file ", what, " is truncated: payload has ",
              size - header_bytes, " bytes, its header declares ", total - header_bytes,
              "; download it again");
  TERSE_CHECK(size == total, CorruptData, "IDX file ", what, " has ", size - total,
              " trailing bytes after the ", total - header_bytes,
              "-byte payload its header declares (expected none); download it again");
  IdxArray out;
  out.magic = load_be32(data);
  out.dims.resize(rank);
  for (size_t i = 0; i < rank; ++i) out.dims[i] = load_be32(data + 4 + 4 * i);
  out.data.assign(data + header_bytes, data + total);
  return out;
}

IdxArray decode_idx_gz(const uint8_t* data, size_t size, const std::string& what,
                       size_t max_bytes) {
  GzipReader reader(data, size, what);
  uint8_t header[16];
  size_t got = reader.read(header, 4);
  TERSE_CHECK(got == 4, CorruptData, "IDX file ", what, " is truncated: it decompresses to ", got,
              " bytes, shorter than its 4-byte magic; download it again");
  const size_t rank = parse_magic(header, what);
  const size_t header_bytes = 4 + 4 * rank;
  got = reader.read(header + 4, header_bytes - 4);
  TERSE_CHECK(got == header_bytes - 4, CorruptData, "IDX file ", what,
              " is truncated: it decompresses to ", 4 + got, " bytes, shorter than its ",
              header_bytes, "-byte header; download it again");
  const size_t total = declared_size(header, rank, what, max_bytes);
  // Memory grows with the bytes actually inflated, never beyond the validated
  // header's size: a short stream behind a header that claims 1 GiB costs no 1 GiB allocation.
  std::vector<uint8_t> bytes(header, header + header_bytes);
  while (bytes.size() < total) {
    const size_t have = bytes.size();
    // Geometric growth from 64 KiB: at most twice the bytes that really arrived.
    const size_t want = std::min(std::max(have, size_t{1} << 16), total - have);
    bytes.resize(have + want);
    got = reader.read(bytes.data() + have, want);
    bytes.resize(have + got);
    TERSE_CHECK(got == want, CorruptData, "IDX file ", what, " is truncated: payload has ",
                bytes.size() - header_bytes, " bytes, its header declares ", total - header_bytes,
                "; download it again");
  }
  uint8_t extra = 0;
  TERSE_CHECK(reader.read(&extra, 1) == 0, CorruptData, "IDX file ", what,
              " decompresses to more than the ", total,
              " bytes its header declares (trailing bytes); the file is corrupt: download it "
              "again");
  return decode_idx(bytes.data(), bytes.size(), what, max_bytes);
}

std::vector<uint8_t> encode_idx(const IdxArray& array) {
  TERSE_CHECK(array.magic == kIdxMagicImages || array.magic == kIdxMagicLabels, InvalidArgument,
              "encode_idx: magic ", hex32(array.magic), " is not supported; use ",
              hex32(kIdxMagicImages), " (u8 images) or ", hex32(kIdxMagicLabels), " (u8 labels)");
  const size_t rank = array.magic & 0xffu;
  TERSE_CHECK(array.dims.size() == rank, InvalidArgument, "encode_idx: magic ", hex32(array.magic),
              " needs ", rank, " dims, got ", array.dims.size());
  TERSE_CHECK(array.data.size() == array.numel(), InvalidArgument, "encode_idx: dims hold ",
              array.numel(), " elements but data has ", array.data.size(), " bytes");
  std::vector<uint8_t> out(4 + 4 * rank + array.data.size());
  uint8_t* const dst = out.data();
  // Never fires (the vector holds >= 4 bytes); it lets GCC 13's -Wnull-dereference see that.
  TERSE_CHECK(dst != nullptr, Error, "encode_idx: allocation returned no storage");
  store_be32(dst, array.magic);
  for (size_t i = 0; i < rank; ++i) store_be32(dst + 4 + 4 * i, array.dims[i]);
  if (!array.data.empty()) std::memcpy(dst + 4 + 4 * rank, array.data.data(), array.data.size());
  return out;
}

}  // namespace terse

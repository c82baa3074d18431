#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace terse {

// IDX magic numbers (big-endian): two zero bytes, the type code (0x08: unsigned byte), the rank.
// Only the two layouts of (Fashion-)MNIST are accepted: u8 images (3-D) and u8 labels (1-D).
constexpr uint32_t kIdxMagicImages = 0x00000803;
constexpr uint32_t kIdxMagicLabels = 0x00000801;
constexpr uint8_t kIdxTypeU8 = 0x08;
// Largest decoded IDX file accepted (header + payload); Fashion-MNIST's largest is 47 MB.
constexpr size_t kIdxMaxBytes = size_t{1} << 30;

// A decoded IDX file: dims as stored (e.g. {60000, 28, 28}) and the row-major u8 payload.
struct IdxArray {
  uint32_t magic = kIdxMagicLabels;
  std::vector<uint32_t> dims;
  std::vector<uint8_t> data;

  size_t numel() const;
  bool operator==(const IdxArray& o) const {
    return magic == o.magic && dims == o.dims && data == o.data;
  }
};

// Decodes untrusted IDX bytes. Validates the magic (type code and rank), every dimension
// (non-zero, product without overflow and within `max_bytes`) and the exact length. Throws
// CorruptData naming `what`, the field, the value seen and the value expected.
IdxArray decode_idx(const uint8_t* data, size_t size, const std::string& what,
                    size_t max_bytes = kIdxMaxBytes);

// Decodes a gzip-compressed IDX file. The header is inflated first and the rest is pulled only
// up to the size it declares, so a decompression bomb stops at the declared size (at most
// `max_bytes`). gzip errors and size mismatches throw CorruptData naming `what`.
IdxArray decode_idx_gz(const uint8_t* data, size_t size, const std::string& what,
                       size_t max_bytes = kIdxMaxBytes);

// Encodes `array` as IDX bytes; throws InvalidArgument when the magic, rank or payload size is
// inconsistent. Used for tests, fixtures and fuzz seeds.
std::vector<uint8_t> encode_idx(const IdxArray& array);

}  // namespace terse

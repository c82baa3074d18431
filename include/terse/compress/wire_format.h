#pragma once

#include <cstddef>
#include <cstdint>

namespace terse {

// The versioned, self-describing payload every Compressor writes (docs/compressors.md, "Wire
// format"). All fields are little-endian at fixed offsets, so a payload means the same on every
// rank and every host:
//
//   offset size field
//        0    4 magic        kPayloadMagic ("TRSP")
//        4    1 version      kPayloadVersion
//        5    1 compressor   CompressorId
//        6    1 value coding ValueCoding of the values in the body
//        7    1 index coding IndexCoding of the indices in the body
//        8    8 numel        elements of the dense tensor
//       16    8 count        selected (sent) elements, <= numel
//       24    8 body bytes   bytes after the header; header + body == the payload length
//       32      body         compressor specific (see each compressor's header)
inline constexpr uint32_t kPayloadMagic = 0x50535254u;  // "TRSP" read as little-endian bytes
// Version 2: Rand-k's seed picks its coordinates through a Feistel permutation
// (terse/kernels/rand_k_permutation.h), no longer Floyd's algorithm, and ScaledSign's / QSGD's
// norms are added in a fixed blocked order (terse/kernels/fixed_order_sum.h). Version 1 payloads
// are refused: a version 1 Rand-k seed would decode to other coordinates.
inline constexpr uint8_t kPayloadVersion = 2;
inline constexpr size_t kPayloadHeaderBytes = 32;

enum class CompressorId : uint8_t {
  kTopK = 1,
  kRandK = 2,
  kScaledSign = 3,
  kQsgd = 4,
  kTernGrad = 5,
  kFp16 = 6,
  kBf16 = 7,
  kOneBit = 8,
  kDgc = 9,
};

// The largest CompressorId value; read_payload_header accepts ids 1..kMaxCompressorId.
inline constexpr uint8_t kMaxCompressorId = 9;

// How values travel: f32 as is, or rounded to IEEE half / bfloat16 (round to nearest even); kNone
// where the body carries no per-element values (sign bits, quantisation levels).
enum class ValueCoding : uint8_t { kNone = 0, kF32 = 1, kF16 = 2, kBF16 = 3 };

// How indices travel: kImplicit = none sent (dense, or regenerated from the shared seed);
// kDeltaVarint = first index, then gaps to the previous index (each >= 1), as LEB128 varints.
enum class IndexCoding : uint8_t { kImplicit = 0, kDeltaVarint = 1 };

const char* compressor_id_name(CompressorId id);
const char* value_coding_name(ValueCoding coding);
const char* index_coding_name(IndexCoding coding);
size_t value_coding_bytes(ValueCoding coding);

struct PayloadHeader {
  uint32_t magic = kPayloadMagic;
  uint8_t version = kPayloadVersion;
  CompressorId compressor = CompressorId::kTopK;
  ValueCoding values = ValueCoding::kF32;
  IndexCoding indices = IndexCoding::kImplicit;
  uint64_t numel = 0;
  uint64_t count = 0;
  uint64_t body_bytes = 0;

  // Encoded bits per selected element (whole payload, header included); 0 when count is 0.
  double bits_per_element() const;
  size_t payload_bytes() const { return kPayloadHeaderBytes + static_cast<size_t>(body_bytes); }
};

// Writes the 32 header bytes at out (the caller has checked the room).
void write_payload_header(const PayloadHeader& header, uint8_t* out);

// Reads and validates the header of a payload of len bytes: length >= 32, magic, version, known
// compressor id and codings, count <= numel, header + body == len (no truncation, no trailing
// bytes). Throws CorruptData naming the field, the value seen and the value expected.
PayloadHeader read_payload_header(const uint8_t* data, size_t len);

// LEB128 unsigned varints (7 bits per byte, low group first, high bit = more follows).
size_t varint_bytes(uint64_t v);
// Writes v at out, returns the bytes written (<= 10).
size_t write_varint(uint64_t v, uint8_t* out);
// Reads a varint from [*pos, end), advancing *pos. Throws CorruptData when it runs past end,
// is longer than 10 bytes, overflows 64 bits, or is overlong (a redundant trailing zero group).
uint64_t read_varint(const uint8_t** pos, const uint8_t* end, const char* field);

}  // namespace terse

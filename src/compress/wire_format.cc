#include "terse/compress/wire_format.h"

#include "terse/core/check.h"

namespace terse {
namespace {

void put_u64(uint8_t* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint64_t get_u64(const uint8_t* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{in[i]} << (8 * i);
  return v;
}

}  // namespace

const char* compressor_id_name(CompressorId id) {
  switch (id) {
    case CompressorId::kTopK:
      return "topk";
    case CompressorId::kRandK:
      return "randk";
    case CompressorId::kScaledSign:
      return "sign";
    case CompressorId::kQsgd:
      return "qsgd";
    case CompressorId::kTernGrad:
      return "terngrad";
    case CompressorId::kFp16:
      return "fp16";
    case CompressorId::kBf16:
      return "bf16";
    case CompressorId::kOneBit:
      return "onebit";
    case CompressorId::kDgc:
      return "dgc";
  }
  return "unknown";
}

const char* value_coding_name(ValueCoding coding) {
  switch (coding) {
    case ValueCoding::kNone:
      return "none";
    case ValueCoding::kF32:
      return "f32";
    case ValueCoding::kF16:
      return "f16";
    case ValueCoding::kBF16:
      return "bf16";
  }
  return "unknown";
}

const char* index_coding_name(IndexCoding coding) {
  switch (coding) {
    case IndexCoding::kImplicit:
      return "implicit";
    case IndexCoding::kDeltaVarint:
      return "delta-varint";
  }
  return "unknown";
}

size_t value_coding_bytes(ValueCoding coding) {
  switch (coding) {
    case ValueCoding::kNone:
      return 0;
    case ValueCoding::kF32:
      return 4;
    case ValueCoding::kF16:
    case ValueCoding::kBF16:
      return 2;
  }
  return 0;
}

double PayloadHeader::bits_per_element() const {
  if (count == 0) return 0.0;
  return 8.0 * static_cast<double>(payload_bytes()) / static_cast<double>(count);
}

void write_payload_header(const PayloadHeader& h, uint8_t* out) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(h.magic >> (8 * i));
  out[4] = h.version;
  out[5] = static_cast<uint8_t>(h.compressor);
  out[6] = static_cast<uint8_t>(h.values);
  out[7] = static_cast<uint8_t>(h.indices);
  put_u64(out + 8, h.numel);
  put_u64(out + 16, h.count);
  put_u64(out + 24, h.body_bytes);
}

PayloadHeader read_payload_header(const uint8_t* data, size_t len) {
  TERSE_CHECK(len >= kPayloadHeaderBytes, CorruptData, "payload: length ", len,
              " bytes is shorter than the ", kPayloadHeaderBytes,
              "-byte header (truncated payload); check the sender and the transport");
  PayloadHeader h;
  h.magic = uint32_t{data[0]} | uint32_t{data[1]} << 8 | uint32_t{data[2]} << 16 |
            uint32_t{data[3]} << 24;
  TERSE_CHECK(h.magic == kPayloadMagic, CorruptData, "payload: magic 0x", std::hex, h.magic,
              ", expected 0x", kPayloadMagic, std::dec,
              "; the bytes are not a terse payload (wrong buffer or offset)");
  h.version = data[4];
  TERSE_CHECK(h.version != 1, CorruptData, "payload: version 1, expected ", int{kPayloadVersion},
              ": the payload comes from a terse build before version 2, whose Rand-k seed meant "
              "other coordinates; every rank must run the same terse build");
  TERSE_CHECK(h.version == kPayloadVersion, CorruptData, "payload: version ", int{h.version},
              ", expected ", int{kPayloadVersion}, "; every rank must run the same terse build");
  const uint8_t id = data[5];
  TERSE_CHECK(id >= 1 && id <= kMaxCompressorId, CorruptData, "payload: compressor id ", int{id},
              " is unknown, expected 1..", int{kMaxCompressorId},
              "; every rank must run the same terse build");
  h.compressor = static_cast<CompressorId>(id);
  TERSE_CHECK(data[6] <= 3, CorruptData, "payload: value coding ", int{data[6]},
              " is unknown, expected 0..3");
  h.values = static_cast<ValueCoding>(data[6]);
  TERSE_CHECK(data[7] <= 1, CorruptData, "payload: index coding ", int{data[7]},
              " is unknown, expected 0 or 1");
  h.indices = static_cast<IndexCoding>(data[7]);
  h.numel = get_u64(data + 8);
  h.count = get_u64(data + 16);
  h.body_bytes = get_u64(data + 24);
  TERSE_CHECK(h.numel <= uint64_t{INT64_MAX}, CorruptData, "payload: numel ", h.numel,
              " exceeds the largest tensor size ", INT64_MAX);
  TERSE_CHECK(h.count <= h.numel, CorruptData, "payload: count ", h.count, " exceeds numel ",
              h.numel, "; a compressor selects at most every element");
  const size_t body = len - kPayloadHeaderBytes;
  TERSE_CHECK(h.body_bytes <= body, CorruptData, "payload: body length field says ", h.body_bytes,
              " bytes but only ", body,
              " follow the header (truncated payload); check the sender and the transport");
  TERSE_CHECK(h.body_bytes == body, CorruptData, "payload: ", body - h.body_bytes,
              " trailing bytes after the body (body length field ", h.body_bytes, ", payload has ",
              body, "); pass exactly one payload");
  return h;
}

size_t varint_bytes(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

size_t write_varint(uint64_t v, uint8_t* out) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  out[n++] = static_cast<uint8_t>(v);
  return n;
}

uint64_t read_varint(const uint8_t** pos, const uint8_t* end, const char* field) {
  const uint8_t* p = *pos;
  uint64_t v = 0;
  for (int i = 0;; ++i) {
    TERSE_CHECK(p < end, CorruptData, "payload: varint ", field, " runs past the end of the body ",
                "after ", i, " bytes (truncated payload)");
    TERSE_CHECK(i < 10, CorruptData, "payload: varint ", field,
                " is longer than 10 bytes; expected at most 10 for a 64-bit value");
    const uint8_t b = *p++;
    // The tenth byte may only carry the top bit of a 64-bit value.
    TERSE_CHECK(i < 9 || b <= 1, CorruptData, "payload: varint ", field,
                " overflows 64 bits (tenth byte 0x", std::hex, int{b}, std::dec, ")");
    v |= uint64_t{b & 0x7fu} << (7 * i);
    if ((b & 0x80u) == 0) {
      TERSE_CHECK(i == 0 || b != 0, CorruptData, "payload: varint ", field, " is overlong (", i + 1,
                  " bytes ending in a zero group); expected the shortest encoding");
      break;
    }
  }
  *pos = p;
  return v;
}

}  // namespace terse

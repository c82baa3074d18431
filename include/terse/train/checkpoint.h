#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "terse/core/state_dict.h"

namespace terse {

// Checkpoint file layout (all integers little-endian), see docs/checkpoints.md:
//   [0, 8)            magic "TERSECKP"
//   [8, 12)           u32 format version (kCheckpointVersion)
//   [12, 16)          u32 flags, 0
//   [16, 24)          u64 H: length of the JSON header
//   [24, 24 + H)      JSON header: meta, sections (ints, floats, strings), entries table
//                     (section, name, dtype, shape, offset, nbytes), payload_bytes
//   [24 + H, +P)      payload: the raw tensor bytes, each entry 64-byte aligned
//   last 4 bytes      u32 CRC-32 (zlib) of every byte before it
constexpr char kCheckpointMagic[8] = {'T', 'E', 'R', 'S', 'E', 'C', 'K', 'P'};
constexpr uint32_t kCheckpointVersion = 1;
constexpr size_t kCheckpointPrefixBytes = 24;
constexpr size_t kCheckpointAlign = 64;
// The terse release that writes checkpoints (project(VERSION) in CMakeLists.txt; a test checks).
constexpr const char* kTerseVersion = "0.1.0";

// What one rank saves: free-form metadata (model, world_size, rank, epoch, step, seed,
// optimizer, ...) and named sections ("model", "optimizer", "trainer") of plain state.
struct Checkpoint {
  nlohmann::json meta = nlohmann::json::object();
  std::map<std::string, StateDict> sections;
};

// Serializes `ckpt`; meta gains "terse_version" when it has none. Throws InvalidArgument when a
// tensor's shape disagrees with its byte count or a name is empty or not UTF-8.
std::vector<uint8_t> encode_checkpoint(const Checkpoint& ckpt);

// Parses untrusted checkpoint bytes. Validates magic, version, flags, header length, CRC, JSON,
// and every entry (dtype, shape, offset, length, overlap, duplicates); throws CorruptData naming
// `what` (the file), the field, the value seen and the one expected.
Checkpoint decode_checkpoint(const uint8_t* data, size_t size, const std::string& what);

// Reads only the prefix and JSON header of a checkpoint file (no payload, no CRC check) and
// returns its meta: cheap compatibility checks before loading. Throws like load_checkpoint.
nlohmann::json read_checkpoint_meta(const std::string& path);

// Writes `path` atomically: `<path>.tmp`, fsync, rename over `path`, fsync the directory. A
// crash at any point leaves either the previous file or the new one, never a mix. Throws
// InvalidArgument naming the path and the errno text on any failure (the .tmp is removed).
void write_file_atomic(const std::string& path, const uint8_t* data, size_t size);

// Reads a whole file; a missing or unreadable file throws InvalidArgument naming the path.
std::vector<uint8_t> read_file(const std::string& path);

void save_checkpoint(const std::string& path, const Checkpoint& ckpt);
Checkpoint load_checkpoint(const std::string& path);

}  // namespace terse

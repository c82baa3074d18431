// Fuzz target: decode_checkpoint. A random input almost never carries a valid CRC-32, so each
// input is decoded twice: as is (the CRC gate) and with its last 4 bytes replaced by the CRC of
// the rest, so the JSON header and entry validation are fuzzed too.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "terse/core/error.h"
#include "terse/train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    terse::decode_checkpoint(data, size, "fuzz.ckpt");
  } catch (const terse::Error&) {
  }
  if (size >= 4) {
    std::vector<uint8_t> fixed(data, data + size);
    const size_t body = size - 4;
    const auto crc = static_cast<uint32_t>(crc32(0, fixed.data(), static_cast<uInt>(body)));
    for (size_t i = 0; i < 4; ++i) fixed[body + i] = static_cast<uint8_t>(crc >> (8 * i));
    try {
      const terse::Checkpoint c = terse::decode_checkpoint(fixed.data(), size, "fuzz.ckpt");
      // Whatever decodes must encode again and decode to the same sections.
      const std::vector<uint8_t> again = terse::encode_checkpoint(c);
      const terse::Checkpoint d = terse::decode_checkpoint(again.data(), again.size(), "re");
      for (const auto& [name, sd] : c.sections) {
        const auto it = d.sections.find(name);
        if (it == d.sections.end() || sd.tensors.size() != it->second.tensors.size() ||
            sd.ints != it->second.ints || sd.strings != it->second.strings)
          __builtin_trap();
      }
    } catch (const terse::Error&) {
    }
  }
  return 0;
}

// Fuzz target: decode_idx on raw (uncompressed) IDX bytes.
#include <cstddef>
#include <cstdint>

#include "terse/core/error.h"
#include "terse/data/idx_array.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const terse::IdxArray a = terse::decode_idx(data, size, "fuzz.idx");
    // A decoded array must re-encode to exactly the input.
    if (terse::encode_idx(a).size() != size) __builtin_trap();
  } catch (const terse::Error&) {
  }
  return 0;
}

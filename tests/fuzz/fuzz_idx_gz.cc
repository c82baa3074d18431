// Fuzz target: the gzip path. The input is used twice: as a gzip stream for decode_idx_gz and
// gunzip (corrupt streams, bombs, trailing data), and compressed by us so that arbitrary IDX
// headers reach the header-bounded inflate of decode_idx_gz.
#include <cstddef>
#include <cstdint>

#include "terse/core/error.h"
#include "terse/data/gzip_reader.h"
#include "terse/data/idx_array.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    terse::decode_idx_gz(data, size, "fuzz.gz");
  } catch (const terse::Error&) {
  }
  try {
    terse::gunzip(data, size, size_t{1} << 22, "fuzz.gz");
  } catch (const terse::Error&) {
  }
  try {
    const std::vector<uint8_t> z = terse::gzip_compress(data, size);
    terse::decode_idx_gz(z.data(), z.size(), "fuzz.idx.gz", size_t{1} << 24);
  } catch (const terse::Error&) {
  }
  return 0;
}

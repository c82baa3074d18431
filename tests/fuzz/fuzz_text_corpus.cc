// Fuzz target: TextCorpus::from_bytes on arbitrary bytes (gzip or plain: corrupt streams, bombs,
// NUL bytes, too-short texts), with the minimum split size taken from the first byte. A valid
// result must split its text exactly: train 90%, validation the rest, both at least the minimum.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "terse/core/error.h"
#include "terse/data/text_corpus.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int64_t min_split = size > 0 ? 1 + data[0] % 64 : 1;
  try {
    const terse::TextCorpus c = terse::TextCorpus::from_bytes(data, size, "fuzz.txt", min_split);
    const auto n_train = static_cast<int64_t>(c.train().size());
    const auto n_val = static_cast<int64_t>(c.validation().size());
    if (n_train < min_split || n_val < min_split || n_train != c.size() * 9 / 10) std::abort();
  } catch (const terse::Error&) {
  }
  return 0;
}

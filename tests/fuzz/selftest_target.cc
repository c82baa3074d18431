// Self-test of the fuzz harness: a target with a planted bug (a non-terse exception when the
// input starts with 'B'). fuzz.selftest passes only if the harness finds and reports it.
#include <cstddef>
#include <cstdint>
#include <stdexcept>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 0 && data[0] == 'B') throw std::logic_error("planted bug found");
  return 0;
}

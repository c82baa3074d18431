#pragma once

#include <cstdint>
#include <vector>

namespace terse_bench {

// dst = src over n floats, a vectorised loop run with the optimizer executor's schedule (65536-
// element chunks taken dynamically by the OpenMP threads): the machine's copy bandwidth at the
// size and thread count of an optimizer row, timed in the same rounds as the optimizer. A copy
// pays a read for ownership of its destination that an in-place update does not, so an optimizer
// step can count more GB/s than this copy (> 100 %).
class StreamCopy {
 public:
  explicit StreamCopy(int64_t n);

  void run(int threads);
  // Bytes counted per run: n floats read and n written.
  double bytes() const { return 8.0 * static_cast<double>(offsets_.back()); }

 private:
  std::vector<float> src_, dst_;
  std::vector<int64_t> offsets_;
};

}  // namespace terse_bench

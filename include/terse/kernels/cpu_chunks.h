#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace terse {

// Elements per chunk of a CPU multi-tensor pass.
inline constexpr int64_t kCpuChunkElements = int64_t{1} << 16;

// Walks the concatenation of several tensors (tensor i holds elements offsets[i] ..
// offsets[i+1]) in fixed chunks of kCpuChunkElements, which `threads` OpenMP threads take
// dynamically, and calls fn(i, begin, end) for each piece [begin, end) of tensor i inside a
// chunk (begin/end relative to tensor i). A chunk may span several small tensors, so big and
// small tensors balance; fixed chunk bounds make the pieces independent of the thread count.
// The one schedule shared by the optimizer executor and the benchmark's roofline twins.
template <typename Fn>
void cpu_for_each_chunk_piece(const std::vector<int64_t>& offsets, int threads, const Fn& fn) {
  const int64_t total = offsets.empty() ? 0 : offsets.back();
  if (total == 0) return;
  const int64_t num_chunks = (total + kCpuChunkElements - 1) / kCpuChunkElements;
  const auto run_chunk = [&](int64_t c) {
    const int64_t lo = c * kCpuChunkElements;
    const int64_t hi = std::min(total, lo + kCpuChunkElements);
    // First tensor holding element lo; walk forward through the tensors this chunk spans.
    size_t i = static_cast<size_t>(std::upper_bound(offsets.begin(), offsets.end(), lo) -
                                   offsets.begin()) -
               1;
    for (int64_t pos = lo; pos < hi; ++i) {
      const int64_t end = std::min(hi, offsets[i + 1]);
      if (end > pos) fn(i, pos - offsets[i], end - offsets[i]);
      pos = std::max(pos, end);
    }
  };
#ifdef _OPENMP
  if (threads > 1 && num_chunks > 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t c = 0; c < num_chunks; ++c) run_chunk(c);
    return;
  }
#endif
  (void)threads;
  for (int64_t c = 0; c < num_chunks; ++c) run_chunk(c);
}

}  // namespace terse

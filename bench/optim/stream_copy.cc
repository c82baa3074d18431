#include "optim/stream_copy.h"

#include "terse/kernels/cpu_chunks.h"

namespace terse_bench {
namespace {

// Built like the kernels (omp simd, run-time ISA dispatch); + 0.0f keeps GCC from turning the
// loop into a memcpy call.
__attribute__((target_clones("avx512f", "avx2", "default"))) void copy_range(
    float* __restrict d, const float* __restrict s, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) d[i] = s[i] + 0.0f;
}

}  // namespace

StreamCopy::StreamCopy(int64_t n)
    : src_(static_cast<size_t>(n), 1.0f), dst_(static_cast<size_t>(n), 0.0f), offsets_{0, n} {}

void StreamCopy::run(int threads) {
  terse::cpu_for_each_chunk_piece(offsets_, threads, [&](size_t, int64_t b, int64_t e) {
    copy_range(dst_.data() + b, src_.data() + b, e - b);
  });
}

}  // namespace terse_bench

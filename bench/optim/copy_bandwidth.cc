#include "optim/copy_bandwidth.h"

#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include "optim/timing.h"

namespace terse_bench {
namespace {

// + 0.0f keeps GCC from turning the loop into a memcpy call.
__attribute__((target_clones("avx512f", "avx2", "default"))) void copy_range(
    float* __restrict d, const float* __restrict s, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) d[i] = s[i] + 0.0f;
}

}  // namespace

CopyBandwidth CopyBandwidth::measure(int threads, int reps) {
  const int64_t n = int64_t{128} << 20;  // floats
  std::vector<float> src(static_cast<size_t>(n), 1.0f), dst(static_cast<size_t>(n), 0.0f);
  const int64_t chunk = int64_t{1} << 20;
  const int64_t chunks = n / chunk;
  (void)threads;  // used only by the OpenMP pragmas
  const double bytes = 2.0 * static_cast<double>(n) * sizeof(float);
  const auto copy_memcpy = [&] {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t c = 0; c < chunks; ++c) {
      std::memcpy(dst.data() + c * chunk, src.data() + c * chunk, chunk * sizeof(float));
    }
  };
  const auto copy_loop = [&] {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t c = 0; c < chunks; ++c) {
      copy_range(dst.data() + c * chunk, src.data() + c * chunk, chunk);
    }
  };
  CopyBandwidth bw;
  bw.memcpy_gbps = bytes / time_calls(reps, copy_memcpy).best / 1e9;
  bw.loop_gbps = bytes / time_calls(reps, copy_loop).best / 1e9;
  return bw;
}

}  // namespace terse_bench

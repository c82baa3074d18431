#include "optim/copy_bandwidth.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "optim/stream_copy.h"
#include "optim/timing.h"

namespace terse_bench {

CopyBandwidth CopyBandwidth::measure(int threads, int reps) {
  const int64_t n = int64_t{128} << 20;  // floats
  CopyBandwidth bw;
  {
    std::vector<float> src(static_cast<size_t>(n), 1.0f), dst(static_cast<size_t>(n), 0.0f);
    const int64_t chunk = int64_t{1} << 20;  // 4 MiB: large enough for non-temporal stores
    const int64_t chunks = n / chunk;
    (void)threads;  // used only by the OpenMP pragma
    const auto copy_memcpy = [&] {
#pragma omp parallel for schedule(static) num_threads(threads)
      for (int64_t c = 0; c < chunks; ++c) {
        std::memcpy(dst.data() + c * chunk, src.data() + c * chunk, chunk * sizeof(float));
      }
    };
    bw.memcpy_gbps = 8.0 * static_cast<double>(n) / 1e9 / time_calls(reps, copy_memcpy).best;
  }
  StreamCopy copy(n);
  bw.loop_gbps = copy.bytes() / 1e9 / time_calls(reps, [&] { copy.run(threads); }).best;
  return bw;
}

}  // namespace terse_bench

#pragma once

// Shared by the GPU benchmarks (cuda_optim_bench, cuda_codec_bench, cuda_dgc_bench,
// cuda_dgc_exchange_bench): a CUDA error check that ends the program with a message, the median
// of timed calls with CUDA events or by the wall clock, and comma-separated lists.

#include <cuda_runtime.h>
#include <errno.h>  // program_invocation_short_name

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace terse::bench {

// Ends the benchmark, naming the call that failed, on a CUDA error.
inline void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what,
                 cudaGetErrorString(e));
    std::exit(1);
  }
}

// Median of `reps` timings (ms) of f, after one warm-up, with CUDA events on the default stream.
inline double cuda_median_ms(int reps, const std::function<void()>& f) {
  cudaEvent_t a, b;
  cuda_ok(cudaEventCreate(&a), "event");
  cuda_ok(cudaEventCreate(&b), "event");
  f();
  cuda_ok(cudaDeviceSynchronize(), "warm-up");
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    cuda_ok(cudaEventRecord(a), "record");
    f();
    cuda_ok(cudaEventRecord(b), "record");
    cuda_ok(cudaEventSynchronize(b), "sync");
    float ms = 0;
    cuda_ok(cudaEventElapsedTime(&ms, a, b), "elapsed");
    t.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Median wall time (ms) of `reps` calls of f after two warm-ups, each call from an idle device
// to an idle device: for calls that wait for their own results (read-backs), as a training step
// sees them.
inline double wall_median_ms(int reps, const std::function<void()>& f) {
  f();
  f();
  cuda_ok(cudaDeviceSynchronize(), "warm-up");
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto a = std::chrono::steady_clock::now();
    f();
    cuda_ok(cudaDeviceSynchronize(), "sync");
    t.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');) out.push_back(x);
  return out;
}

}  // namespace terse::bench

#include "terse/kernels/cpu_threads.h"

#include <atomic>

#include "terse/core/check.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace terse {
namespace {
std::atomic<int> g_threads{0};  // 0: OpenMP's default
}  // namespace

void set_cpu_threads(int n) {
  TERSE_CHECK(n >= 0, InvalidArgument, "set_cpu_threads: thread count must be >= 1 (or 0 for ",
              "the default), got ", n);
  g_threads.store(n, std::memory_order_relaxed);
}

int cpu_threads() {
#ifdef _OPENMP
  const int n = g_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace terse

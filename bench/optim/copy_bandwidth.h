#pragma once

namespace terse_bench {

// Copy bandwidth with `threads` OpenMP threads over 2 x 512 MiB (read + write bytes counted):
// glibc memcpy (non-temporal stores at this size) and a stream-copy loop built like the kernels
// (ordinary stores, omp simd, run-time ISA dispatch). The loop is the reference the optimizer
// rows are compared with. A copy pays a read for ownership of its destination that an in-place
// update does not, so an optimizer step can move its bytes faster than this (> 100 %).
struct CopyBandwidth {
  double memcpy_gbps = 0, loop_gbps = 0;

  static CopyBandwidth measure(int threads, int reps);
};

}  // namespace terse_bench

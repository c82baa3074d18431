#pragma once

namespace terse_bench {

// Copy bandwidth with `threads` OpenMP threads over 2 x 512 MiB (read + write bytes counted):
// glibc memcpy (non-temporal stores at this size) and StreamCopy's loop. Context for the header
// of a thread count; each optimizer row has its own StreamCopy of its own size.
struct CopyBandwidth {
  double memcpy_gbps = 0, loop_gbps = 0;

  static CopyBandwidth measure(int threads, int reps);
};

}  // namespace terse_bench

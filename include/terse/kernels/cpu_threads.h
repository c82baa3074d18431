#pragma once

namespace terse {

// Threads the CPU kernels use (OpenMP). The default is OpenMP's (OMP_NUM_THREADS or the number
// of cores); MPI ranks sharing a machine should set cores / local ranks. n = 0 restores the
// default; n < 0 throws InvalidArgument. Without OpenMP the kernels run on the calling thread
// and cpu_threads() returns 1.
void set_cpu_threads(int n);
int cpu_threads();

}  // namespace terse

#pragma once

#include <ostream>

namespace terse::cli {

// "0.1.0": the project version this binary was built from.
const char* version();

// `terse info`: the build (version, build type, compiler, C++ standard, libtorch, MPI, NCCL,
// CUDA) and the machine (CUDA devices, OpenMP threads, SIMD), one "key: value" a line.
int run_info(std::ostream& out);

}  // namespace terse::cli

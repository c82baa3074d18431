#include "info_command.h"

#include <torch/version.h>

#include <string>

#include "exit_codes.h"
#include "terse/comm/communicator.h"
#include "terse/comm/nccl_communicator.h"
#include "terse/kernels/cuda_info.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace terse::cli {
namespace {

std::string compiler() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("g++ ") + __VERSION__;
#else
  return "unknown";
#endif
}

std::string cxx_standard() {
  const long value = __cplusplus;
  const char* name = value >= 202002L ? "C++20" : value >= 201703L ? "C++17" : "older than C++17";
  return std::string(name) + " (" + std::to_string(value) + ")";
}

std::string cuda_line(const CudaInfo& cuda) {
  if (!cuda.compiled) return "not built";
  return "built (runtime " + std::to_string(cuda.runtime_version / 1000) + "." +
         std::to_string((cuda.runtime_version % 1000) / 10) + ")";
}

std::string simd() {
  std::string out;
  auto add = [&out](bool has, const char* name) {
    if (!has) return;
    if (!out.empty()) out += ' ';
    out += name;
  };
  __builtin_cpu_init();
  add(__builtin_cpu_supports("sse4.2"), "sse4.2");
  add(__builtin_cpu_supports("avx"), "avx");
  add(__builtin_cpu_supports("avx2"), "avx2");
  add(__builtin_cpu_supports("fma"), "fma");
  add(__builtin_cpu_supports("avx512f"), "avx512f");
  return out.empty() ? "none of sse4.2 avx avx2 fma avx512f" : out;
}

}  // namespace

const char* version() { return TERSE_VERSION; }

int run_info(std::ostream& out) {
  const std::string mpi = mpi_library_version();
  const CudaInfo cuda = CudaInfo::query();
  out << "terse: " << version() << '\n'
      << "build type: " << TERSE_BUILD_TYPE << '\n'
      << "compiler: " << compiler() << '\n'
      << "c++ standard: " << cxx_standard() << '\n'
      << "libtorch: " << TORCH_VERSION << '\n'
      << "mpi: " << (mpi.empty() ? std::string("not built") : mpi) << '\n'
      << "nccl: "
      << (nccl_available() ? "built (library " + nccl_library_version() + ")"
                           : std::string("not built"))
      << '\n'
      << "cuda: " << cuda_line(cuda) << '\n'
      << "cuda devices: " << cuda.devices.size();
  if (cuda.devices.empty()) out << " (" << cuda.status << ")";
  out << '\n';
  for (const CudaDeviceInfo& device : cuda.devices) {
    out << "cuda device " << device.index << ": " << device.name << ", sm_" << device.major
        << device.minor << ", " << device.total_memory_bytes / (1024 * 1024) << " MiB, "
        << device.multiprocessors << " SMs\n";
  }
#ifdef _OPENMP
  out << "openmp threads: " << omp_get_max_threads() << '\n';
#else
  out << "openmp threads: not built\n";
#endif
  out << "simd: " << simd() << '\n';
  return kExitOk;
}

}  // namespace terse::cli

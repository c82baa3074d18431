#pragma once

#include <cstdint>
#include <string>
#include <utility>

namespace terse_bench {

// /proc/cpuinfo's model name, or "unknown".
std::string cpu_model();

// Bytes of one L3 instance and where the figure came from: /sys (the kernel's view), else
// sysconf(_SC_LEVEL3_CACHE_SIZE), else `lscpu -B`. /sys goes first because glibc's sysconf can
// be wrong under a hypervisor (320 MiB for the 32 MiB L3 of the VM these docs were measured on).
std::pair<int64_t, std::string> l3_cache();

}  // namespace terse_bench

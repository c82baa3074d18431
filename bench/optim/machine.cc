#include "optim/machine.h"

#include <unistd.h>

#include <cstdio>
#include <exception>
#include <fstream>

#include "optim/bench_args.h"

namespace terse_bench {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

std::pair<int64_t, std::string> l3_cache() {
  try {
    for (int idx = 0; idx < 16; ++idx) {
      const std::string dir =
          "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(idx) + "/";
      std::ifstream level_file(dir + "level"), size_file(dir + "size");
      int level = 0;
      std::string size;
      if (!(level_file >> level)) break;
      if (level == 3 && (size_file >> size)) {
        const int64_t bytes = parse_size(size);
        if (bytes > 0) return {bytes, "/sys"};
      }
    }
  } catch (const std::exception&) {
  }
#ifdef _SC_LEVEL3_CACHE_SIZE
  const long sc = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (sc > 0) return {static_cast<int64_t>(sc), "sysconf"};
#endif
  if (FILE* f = popen("lscpu -B 2>/dev/null", "r")) {
    char buf[256];
    int64_t bytes = 0;
    while (std::fgets(buf, sizeof buf, f) != nullptr) {
      const std::string line = buf;
      if (line.rfind("L3 cache:", 0) == 0) {
        try {
          bytes = std::stoll(line.substr(line.find(':') + 1));
        } catch (const std::exception&) {
        }
      }
    }
    pclose(f);
    if (bytes > 0) return {bytes, "lscpu"};
  }
  return {0, "unknown"};
}

}  // namespace terse_bench

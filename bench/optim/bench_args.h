#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "terse/core/dtype.h"

namespace terse_bench {

// optim_bench's command line.
struct BenchArgs {
  std::vector<int64_t> sizes = {int64_t{1} << 20, int64_t{4} << 20, int64_t{16} << 20,
                                int64_t{64} << 20};
  std::vector<int> threads = {1, 2};
  std::vector<std::string> optimizers;  // empty: every registered optimizer
  int reps = 7;
  std::string json;
  bool torch = true;
  terse::DType dtype = terse::DType::kF32;

  // Exits with status 2 and a usage line on a bad argument.
  static BenchArgs parse(int argc, char** argv);
};

// "64M", "512K", "2G" (binary multiples) or a plain number.
int64_t parse_size(const std::string& s);
// 64M, 256K or a plain count.
std::string size_label(int64_t n);

}  // namespace terse_bench

#include "optim/bench_args.h"

#include <cstdio>
#include <cstdlib>

namespace terse_bench {
namespace {

constexpr const char* kUsage =
    "usage: optim_bench [--sizes 1M,4M,16M,64M] [--threads 1,2] [--optimizers sgd,adam,...]\n"
    "                   [--reps 7] [--dtype f32|bf16|f16] [--json FILE] [--no-torch]";

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    const auto c = s.find(',', pos);
    out.push_back(s.substr(pos, c == std::string::npos ? std::string::npos : c - pos));
    if (c == std::string::npos) break;
    pos = c + 1;
  }
  return out;
}

[[noreturn]] void usage_error(const std::string& what) {
  std::fprintf(stderr, "optim_bench: %s\n%s\n", what.c_str(), kUsage);
  std::exit(2);
}

}  // namespace

int64_t parse_size(const std::string& s) {
  const char last = s.empty() ? '\0' : s.back();
  const int64_t mult = last == 'G'   ? (int64_t{1} << 30)
                       : last == 'M' ? (int64_t{1} << 20)
                       : last == 'K' ? 1024
                                     : 1;
  return std::stoll(mult == 1 ? s : s.substr(0, s.size() - 1)) * mult;
}

std::string size_label(int64_t n) {
  if (n % (int64_t{1} << 20) == 0) return std::to_string(n >> 20) + "M";
  if (n % 1024 == 0) return std::to_string(n >> 10) + "K";
  return std::to_string(n);
}

BenchArgs BenchArgs::parse(int argc, char** argv) {
  BenchArgs a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(k + " needs a value");
      return argv[++i];
    };
    try {
      if (k == "--sizes") {
        a.sizes.clear();
        for (const auto& s : split(value())) a.sizes.push_back(parse_size(s));
      } else if (k == "--threads") {
        a.threads.clear();
        for (const auto& s : split(value())) a.threads.push_back(std::stoi(s));
      } else if (k == "--optimizers") {
        a.optimizers = split(value());
      } else if (k == "--reps") {
        a.reps = std::stoi(value());
      } else if (k == "--json") {
        a.json = value();
      } else if (k == "--dtype") {
        a.dtype = terse::dtype_from_name(value());
      } else if (k == "--no-torch") {
        a.torch = false;
      } else {
        usage_error("unknown argument '" + k + "'");
      }
    } catch (const std::exception& e) {
      usage_error("bad value for " + k + " (" + e.what() + ")");
    }
  }
  if (a.reps < 1) usage_error("--reps must be >= 1, got " + std::to_string(a.reps));
  for (const int64_t n : a.sizes) {
    if (n < 1) usage_error("--sizes must be >= 1, got " + std::to_string(n));
  }
  for (const int t : a.threads) {
    if (t < 1) usage_error("--threads must be >= 1, got " + std::to_string(t));
  }
  return a;
}

}  // namespace terse_bench

// A stand-in for libFuzzer where clang's -fsanitize=fuzzer is not available (GCC builds): runs
// every seed input, then mutants of them (bit flips, byte sets, truncations, insertions,
// deletions, chunk copies, size-field rewrites; seeded with Philox so a run is reproducible)
// until a time or run budget is spent. It accepts the libFuzzer flags CTest passes
// (-max_total_time=S, 0: no limit; -runs=N; -seed=N; -max_len=N) and corpus directories or
// files.
// An exception other than terse::Error escaping the target fails the run (exit 1) and the input
// is saved as crash-<run> in the working directory; a sanitizer report aborts the process.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <typeinfo>
#include <vector>

#include "terse/core/philox.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

bool flag_value(const std::string& arg, const char* name, long long* out) {
  const std::string prefix = std::string("-") + name + "=";
  if (arg.rfind(prefix, 0) != 0) return false;
  *out = std::stoll(arg.substr(prefix.size()));
  return true;
}

Bytes read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_le(Bytes& b, size_t pos, uint64_t v, size_t width, bool big_endian) {
  for (size_t i = 0; i < width && pos + i < b.size(); ++i) {
    const size_t shift = 8 * (big_endian ? width - 1 - i : i);
    b[pos + i] = static_cast<uint8_t>(v >> shift);
  }
}

void mutate(Bytes& b, terse::PhiloxStream& rng, size_t max_len) {
  const int n = 1 + static_cast<int>(rng.below(4));
  for (int m = 0; m < n; ++m) {
    const size_t size = b.size();
    const uint64_t kind = rng.below(8);
    if (size == 0 && kind != 3) {
      b.push_back(static_cast<uint8_t>(rng.next_u32()));
      continue;
    }
    const size_t pos = size ? static_cast<size_t>(rng.below(size)) : 0;
    switch (kind) {
      case 0:  // bit flip
        b[pos] ^= static_cast<uint8_t>(1u << rng.below(8));
        break;
      case 1:  // random byte
        b[pos] = static_cast<uint8_t>(rng.next_u32());
        break;
      case 2:  // truncation
        b.resize(static_cast<size_t>(rng.below(size + 1)));
        break;
      case 3: {  // insertion of 1..16 random bytes
        const size_t len = 1 + static_cast<size_t>(rng.below(16));
        Bytes ins(len);
        for (auto& x : ins) x = static_cast<uint8_t>(rng.next_u32());
        const size_t at = size ? static_cast<size_t>(rng.below(size + 1)) : 0;
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), ins.begin(), ins.end());
        break;
      }
      case 4: {  // deletion of a range
        const size_t len = 1 + static_cast<size_t>(rng.below(std::min<size_t>(size - pos, 64)));
        b.erase(b.begin() + static_cast<std::ptrdiff_t>(pos),
                b.begin() + static_cast<std::ptrdiff_t>(pos + len));
        break;
      }
      case 5: {  // copy a chunk over another place
        const size_t from = static_cast<size_t>(rng.below(size));
        const size_t len = 1 + static_cast<size_t>(rng.below(std::min<size_t>(size - from, 32)));
        const Bytes chunk(b.begin() + static_cast<std::ptrdiff_t>(from),
                          b.begin() + static_cast<std::ptrdiff_t>(from + len));
        for (size_t i = 0; i < len && pos + i < b.size(); ++i) b[pos + i] = chunk[i];
        break;
      }
      default: {  // size-field rewrite: an interesting 2/4/8-byte value, either byte order
        const uint64_t interesting[] = {0,
                                        1,
                                        0x7f,
                                        0xff,
                                        0x100,
                                        0xffff,
                                        0x7fffffff,
                                        0x80000000,
                                        0xffffffff,
                                        0x100000000ull,
                                        0x7fffffffffffffffull,
                                        0xffffffffffffffffull,
                                        size,
                                        size - 1,
                                        size + 1,
                                        rng.next_u64()};
        const uint64_t v = interesting[rng.below(std::size(interesting))];
        const size_t widths[] = {2, 4, 8};
        const size_t width = widths[rng.below(3)];
        // Aligned positions hit real header fields far more often.
        const size_t at = rng.below(2) ? pos / width * width : pos;
        write_le(b, at, v, width, rng.below(2) == 0);
        break;
      }
    }
  }
  if (b.size() > max_len) b.resize(max_len);
}

bool run_one(const Bytes& input, long long index) {
  try {
    LLVMFuzzerTestOneInput(input.data(), input.size());
    return true;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FAIL: input %lld (%zu bytes) threw %s: %s\n", index, input.size(),
                 typeid(e).name(), e.what());
  } catch (...) {
    std::fprintf(stderr, "FAIL: input %lld (%zu bytes) threw a non-std exception\n", index,
                 input.size());
  }
  const std::string name = "crash-" + std::to_string(index);
  std::ofstream(name, std::ios::binary)
      .write(reinterpret_cast<const char*>(input.data()),
             static_cast<std::streamsize>(input.size()));
  std::fprintf(stderr, "input saved to %s; rerun with: <this binary> %s\n", name.c_str(),
               name.c_str());
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  long long max_seconds = -1, runs = -1, seed = 1, max_len = 1 << 16;
  std::vector<Bytes> seeds;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    long long v = 0;
    if (flag_value(arg, "max_total_time", &v)) {
      max_seconds = v;
    } else if (flag_value(arg, "runs", &v)) {
      runs = v;
    } else if (flag_value(arg, "seed", &v)) {
      seed = v;
    } else if (flag_value(arg, "max_len", &v)) {
      max_len = v;
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "ignoring unknown flag %s\n", arg.c_str());
    } else if (fs::is_directory(arg)) {
      for (const auto& e : fs::directory_iterator(arg))
        if (e.is_regular_file()) seeds.push_back(read_bytes(e.path()));
    } else if (fs::is_regular_file(arg)) {
      seeds.push_back(read_bytes(arg));
    } else {
      std::fprintf(stderr, "corpus path %s does not exist\n", arg.c_str());
      return 2;
    }
  }
  // As in libFuzzer, -runs alone is not time-limited; with neither flag, run for 10 s.
  if (max_seconds < 0) max_seconds = runs < 0 ? 10 : 0;
  if (seeds.empty()) seeds.emplace_back();  // still fuzz, from the empty input
  long long executed = 0;
  for (const Bytes& s : seeds) {
    if (!run_one(s, executed++)) return 1;
  }
  terse::PhiloxStream rng(static_cast<uint64_t>(seed), 0xF022);
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::seconds(max_seconds);
  Bytes input;
  while (runs < 0 || executed < runs) {
    // Mostly mutate a fresh seed; sometimes keep mutating the last mutant (deeper changes).
    if (input.empty() || rng.below(4) != 0) input = seeds[rng.below(seeds.size())];
    mutate(input, rng, static_cast<size_t>(max_len));
    if (!run_one(input, executed++)) return 1;
    if (max_seconds > 0 && (executed & 255) == 0 && std::chrono::steady_clock::now() >= deadline)
      break;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("Done %lld runs in %.1f s (%.0f exec/s), %zu seeds, seed=%lld\n", executed, secs,
              static_cast<double>(executed) / (secs > 0 ? secs : 1), seeds.size(), seed);
  return 0;
}

#pragma once

// A single-process reference of OneBitAllReduce's documented arithmetic (specs/compression.md
// §2.2 and terse/comm/algorithms/one_bit_all_reduce.h: squares summed in double over 8 lanes by
// index, combined pairwise; server sums from 0 in rank order), for the train tests.

#include <cmath>
#include <cstddef>
#include <numeric>
#include <vector>

namespace terse::test {

using Vec = std::vector<float>;

inline float scale_of(const Vec& x, size_t begin, size_t count) {
  double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < count; ++i) {
    const double d = x[begin + i];
    lanes[i % 8] += d * d;
  }
  const double ss = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                    ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  return static_cast<float>(std::sqrt(ss / static_cast<double>(count)));
}

struct RefAllReduce {
  int w;
  size_t n, padded;
  std::vector<Vec> ew, es;
  RefAllReduce(int world, size_t numel) : w(world), n(numel) {
    const auto uw = static_cast<size_t>(w);
    const size_t div = uw * (uw * 8 / std::gcd(uw, size_t{8}));  // W * lcm(W, 8)
    padded = (n + div - 1) / div * div;
    ew.assign(static_cast<size_t>(w), Vec(padded, 0.0f));
    es.assign(static_cast<size_t>(w), Vec(padded / static_cast<size_t>(w), 0.0f));
  }
  Vec reduce(const std::vector<Vec>& m) {
    const size_t chunk = padded / static_cast<size_t>(w);
    std::vector<Vec> sgn(static_cast<size_t>(w), Vec(padded));
    Vec s(static_cast<size_t>(w));
    for (int r = 0; r < w; ++r) {
      Vec x(padded);
      for (size_t i = 0; i < padded; ++i) x[i] = (i < n ? m[r][i] : 0.0f) + ew[r][i];
      s[r] = scale_of(x, 0, padded);
      for (size_t i = 0; i < padded; ++i) {
        const bool pos = x[i] >= 0.0f;
        sgn[r][i] = pos ? 1.0f : -1.0f;
        ew[r][i] = pos ? x[i] - s[r] : x[i] + s[r];
      }
    }
    Vec out(n);
    for (int r = 0; r < w; ++r) {
      Vec y(chunk, 0.0f);
      for (int j = 0; j < w; ++j) {
        const float cj = s[j] / static_cast<float>(w);
        for (size_t i = 0; i < chunk; ++i) y[i] += cj * sgn[j][r * chunk + i];
      }
      for (size_t i = 0; i < chunk; ++i) y[i] += es[r][i];
      const float ss = scale_of(y, 0, chunk);
      for (size_t i = 0; i < chunk; ++i) {
        const bool pos = y[i] >= 0.0f;
        es[r][i] = pos ? y[i] - ss : y[i] + ss;
        if (r * chunk + i < n) out[r * chunk + i] = ss * (pos ? 1.0f : -1.0f);
      }
    }
    return out;
  }
};

}  // namespace terse::test

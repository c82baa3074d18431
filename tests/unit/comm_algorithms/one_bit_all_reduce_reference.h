#pragma once

// The single-process reference of OneBitAllReduce (the math in one_bit_all_reduce.h, plain loops
// over W simulated ranks), shared by the threads-as-ranks unit test and the multirank test.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace terse::one_bit_reference {

using Vec = std::vector<float>;

// Summation order (the one the header documents): blocks of 2^16 elements by index; in a block,
// squares in double, 8 lanes by index mod 8, lanes combined ((l0 + l1) + (l2 + l3)) + ((l4 + l5)
// + (l6 + l7)); block values added in block order from 0; scale = f32(sqrt(ss / n)).
float ref_scale(const Vec& v) {
  const size_t block = size_t{1} << 16;
  double ss = 0.0;
  for (size_t b = 0; b < v.size(); b += block) {
    double l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t i = b; i < std::min(v.size(), b + block); ++i) {
      l[i % 8] += static_cast<double>(v[i]) * v[i];
    }
    ss += ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
  }
  return static_cast<float>(std::sqrt(ss / static_cast<double>(v.size())));
}

int64_t ref_padded(int64_t numel, int w) {
  int64_t lcm = 8;
  while (lcm % w != 0) lcm += 8;
  const int64_t div = w * lcm;
  return (numel + div - 1) / div * div;
}

struct RefWorld {
  int w;
  int64_t numel, n;
  std::vector<Vec> ew;  // per rank, n
  std::vector<Vec> es;  // per rank, n / w
  RefWorld(int w_, int64_t numel_)
      : w(w_), numel(numel_), n(ref_padded(numel_, w_)), ew(w_), es(w_) {
    for (int r = 0; r < w; ++r) {
      ew[r].assign(static_cast<size_t>(n), 0.0f);
      es[r].assign(static_cast<size_t>(n / w), 0.0f);
    }
  }
  // One call: every rank's input in, the (common) output back.
  Vec step(const std::vector<Vec>& in) {
    const int64_t chunk = n / w;
    std::vector<float> sw(w);
    std::vector<std::vector<bool>> pos(w, std::vector<bool>(static_cast<size_t>(n)));
    for (int r = 0; r < w; ++r) {
      Vec x(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) x[i] = (i < numel ? in[r][i] : 0.0f) + ew[r][i];
      sw[r] = ref_scale(x);
      for (int64_t i = 0; i < n; ++i) {
        pos[r][i] = x[i] >= 0.0f;
        ew[r][i] = x[i] - (pos[r][i] ? sw[r] : -sw[r]);
      }
    }
    std::vector<float> ss(w);
    std::vector<std::vector<bool>> spos(w, std::vector<bool>(static_cast<size_t>(chunk)));
    for (int r = 0; r < w; ++r) {
      Vec y(static_cast<size_t>(chunk));
      for (int64_t i = 0; i < chunk; ++i) {
        float acc = 0.0f;
        for (int j = 0; j < w; ++j) {
          const float c = sw[j] / static_cast<float>(w);
          acc += pos[j][r * chunk + i] ? c : -c;
        }
        y[i] = acc + es[r][i];
      }
      ss[r] = ref_scale(y);
      for (int64_t i = 0; i < chunk; ++i) {
        spos[r][i] = y[i] >= 0.0f;
        es[r][i] = y[i] - (spos[r][i] ? ss[r] : -ss[r]);
      }
    }
    Vec out(static_cast<size_t>(numel));
    for (int64_t i = 0; i < numel; ++i) {
      const int64_t j = i / chunk;
      out[i] = spos[j][i - j * chunk] ? ss[j] : -ss[j];
    }
    return out;
  }
};

bool same_bits(const Vec& a, const Vec& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace terse::one_bit_reference

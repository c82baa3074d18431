#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "terse/core/dtype.h"
#include "terse/core/philox.h"
#include "terse/kernels/cpu_multi_tensor.h"

namespace terse_bench {

// Storage of a twin's params and grads: f32, or the raw 16 bits of bf16 / f16 (integer adds, so
// the twin moves the same bytes without the conversions that are part of the real kernel's work).
template <typename T>
using TwinStorage = std::conditional_t<sizeof(T) == 2, uint16_t, float>;

// The roofline of an optimizer's access pattern ("traffic twin"): reads p, g and kStates states
// of type U (f32, or uint8 for the 8-bit optimizers' codes), writes p and the states, in place,
// one add per stream, built like terse's kernels (restrict pointers, `omp simd`, AVX-512 / AVX2 /
// baseline clones, the executor's chunk schedule). Its time is what this machine needs to move
// those bytes. Adds only, so every ISA clone and the scalar replay in verify() give the same
// bits, and verify() makes sure the loop cannot be elided.
template <int kStates, typename S, typename U>
class TrafficTwin {
  static_assert(kStates >= 1 && kStates <= 4, "one to four state streams");

 public:
  explicit TrafficTwin(const std::vector<int64_t>& sizes) {
    terse::PhiloxStream rng(2, 0);
    offsets_.push_back(0);
    for (size_t t = 0; t < sizes.size(); ++t) {
      const auto n = static_cast<size_t>(sizes[t]);
      p_.emplace_back(n);
      g_.emplace_back(n);
      for (auto& s : s_) s.emplace_back(n, U{0});
      for (size_t e = 0; e < n; ++e) {
        p_[t][e] = init(rng.uniform() - 0.5f);
        g_[t][e] = init(rng.uniform() * 1e-3f);
      }
      // Samples for verify(): every kSampleStride-th element and the last one.
      for (size_t e = 0; e < n; e += kSampleStride) samples_.push_back({t, e, p_[t][e], g_[t][e]});
      if (n > 0 && (n - 1) % kSampleStride != 0) {
        samples_.push_back({t, n - 1, p_[t][n - 1], g_[t][n - 1]});
      }
      offsets_.push_back(offsets_.back() + sizes[t]);
    }
  }

  void step(int threads) {
    ++calls_;
    terse::cpu_for_each_chunk_piece(offsets_, threads, [&](size_t i, int64_t b, int64_t e) {
      U* s[4] = {};
      for (int k = 0; k < kStates; ++k) s[k] = s_[k][i].data() + b;
      range(p_[i].data() + b, g_[i].data() + b, s[0], s[1], s[2], s[3], e - b);
    });
  }

  // True when every sampled element holds exactly what calls_ scalar steps give.
  bool verify() const {
    for (const Sample& smp : samples_) {
      S p = smp.p;
      U x[4] = {};
      for (int64_t c = 0; c < calls_; ++c) element(p, smp.g, x);
      if (p != p_[smp.tensor][smp.elem]) return false;
      for (int k = 0; k < kStates; ++k) {
        if (x[k] != s_[k][smp.tensor][smp.elem]) return false;
      }
    }
    return !samples_.empty() || offsets_.back() == 0;
  }

  // Sum of every parameter and state value: reads all the twin wrote.
  double checksum() const {
    double sum = 0;
    for (size_t t = 0; t < p_.size(); ++t) {
      for (const S v : p_[t]) sum += static_cast<double>(v);
      for (const auto& s : s_) {
        for (const U v : s[t]) sum += static_cast<double>(v);
      }
    }
    return sum;
  }

 private:
  static constexpr size_t kSampleStride = 4093;
  static constexpr bool kF32Param = std::is_same_v<S, float>;
  static constexpr bool kF32State = std::is_same_v<U, float>;

  struct Sample {
    size_t tensor, elem;
    S p, g;
  };

  // s0 += g (f32 states; 8-bit codes count up), s[k] += s[k-1], p += last state (f32 params,
  // plus g for 8-bit states so g is read) or p += g (16-bit patterns, wrapping integer add).
  static inline void element(S& p, S g, U (&x)[4]) {
    if constexpr (kF32State) {
      x[0] = x[0] + static_cast<float>(g);
    } else {
      x[0] = static_cast<U>(x[0] + 1);
    }
    for (int k = 1; k < kStates; ++k) x[k] = static_cast<U>(x[k] + x[k - 1]);
    if constexpr (!kF32Param) {
      p = static_cast<S>(p + g);
    } else if constexpr (kF32State) {
      p = p + x[kStates - 1];
    } else {
      p = p + (g + static_cast<float>(x[kStates - 1]));
    }
  }

  __attribute__((target_clones("avx512f", "avx2", "default"))) static void range(
      S* __restrict p, const S* __restrict g, U* __restrict s0, U* __restrict s1, U* __restrict s2,
      U* __restrict s3, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      U x[4] = {s0[i], kStates > 1 ? s1[i] : U{0}, kStates > 2 ? s2[i] : U{0},
                kStates > 3 ? s3[i] : U{0}};
      S pv = p[i];
      element(pv, g[i], x);
      p[i] = pv;
      s0[i] = x[0];
      if constexpr (kStates > 1) s1[i] = x[1];
      if constexpr (kStates > 2) s2[i] = x[2];
      if constexpr (kStates > 3) s3[i] = x[3];
    }
  }

  static S init(float v) {
    if constexpr (kF32Param) {
      return v;
    } else {
      return static_cast<S>(terse::float_to_bits(v) >> 16);
    }
  }

  std::vector<std::vector<S>> p_, g_;
  std::vector<std::vector<U>> s_[kStates];
  std::vector<int64_t> offsets_;
  std::vector<Sample> samples_;
  int64_t calls_ = 0;
};

// Builds the twin of `states` state streams of `state_size` bytes each (4: f32, 1: 8-bit codes)
// over tensors of `sizes` and calls fn(twin). Throws std::invalid_argument for a shape no twin has.
template <typename S, typename Fn>
void visit_twin(int states, int state_size, const std::vector<int64_t>& sizes, Fn&& fn) {
  const auto run = [&](auto* type_tag) {
    std::remove_pointer_t<decltype(type_tag)> twin(sizes);
    fn(twin);
  };
  if (state_size == 4 && states == 1) return run(static_cast<TrafficTwin<1, S, float>*>(nullptr));
  if (state_size == 4 && states == 2) return run(static_cast<TrafficTwin<2, S, float>*>(nullptr));
  if (state_size == 4 && states == 3) return run(static_cast<TrafficTwin<3, S, float>*>(nullptr));
  if (state_size == 4 && states == 4) return run(static_cast<TrafficTwin<4, S, float>*>(nullptr));
  if (state_size == 1 && states == 1) return run(static_cast<TrafficTwin<1, S, uint8_t>*>(nullptr));
  if (state_size == 1 && states == 2) return run(static_cast<TrafficTwin<2, S, uint8_t>*>(nullptr));
  throw std::invalid_argument("no traffic twin with " + std::to_string(states) + " states of " +
                              std::to_string(state_size) + " bytes");
}

}  // namespace terse_bench

#pragma once

// Helpers of the CUDA codec parity tests: GPU detection, device buffers, random gradients, the
// CPU compressor's payload, byte comparison that names the first difference.

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "gpu_skip.h"
#include "terse/compress/compressor.h"
#include "terse/core/philox.h"

namespace terse::codec_test {

// Sizes with odd tails: one element, under a byte of bits, a block and one, several blocks.
inline const std::vector<int64_t> kSizes = {1, 2, 7, 4097, 65537, (int64_t{1} << 20) + 3};

// Device memory of `bytes`, freed on destruction.
struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit DeviceBuffer(size_t n) : bytes(n) {
    if (n > 0) {
      EXPECT_EQ(cudaMalloc(&ptr, n), cudaSuccess);
    }
  }
  template <typename T>
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size() * sizeof(T)) {
    upload(host.data(), bytes);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr != nullptr) cudaFree(ptr);
  }
  void upload(const void* host, size_t n) {
    if (n > 0) {
      EXPECT_EQ(cudaMemcpy(ptr, host, n, cudaMemcpyHostToDevice), cudaSuccess);
    }
  }
  template <typename T>
  std::vector<T> download(size_t count) const {
    std::vector<T> h(count);
    if (count > 0) {
      EXPECT_EQ(cudaMemcpy(h.data(), ptr, count * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    }
    return h;
  }
  float* f32() { return static_cast<float*>(ptr); }
  uint8_t* u8() { return static_cast<uint8_t*>(ptr); }
};

// Random gradient values. wide = false: uniform in [-1, 1); wide = true: that times 2^k with k
// uniform in [-40, 40] (many roundings and ties in the sums). Every 97th element is +0, every
// 89th -0, so sign(0) conventions are exercised.
inline std::vector<float> random_floats(int64_t n, uint64_t seed, bool wide) {
  std::vector<float> x(static_cast<size_t>(n));
  PhiloxStream rng(seed, 11);
  for (int64_t i = 0; i < n; ++i) {
    float v = 2.0f * rng.uniform() - 1.0f;
    if (wide) v = std::ldexp(v, static_cast<int>(rng.below(81)) - 40);
    if (i % 97 == 5) v = 0.0f;
    if (i % 89 == 3) v = -0.0f;
    x[static_cast<size_t>(i)] = v;
  }
  return x;
}

// The CPU compressor's whole payload for x.
inline std::vector<uint8_t> cpu_payload(const Compressor& c, std::vector<float> x,
                                        uint64_t seed_step) {
  std::vector<uint8_t> out(c.max_encoded_bytes(static_cast<int64_t>(x.size())));
  const size_t len = c.encode(TensorView::of(x.data(), static_cast<int64_t>(x.size())), seed_step,
                              out.data(), out.size());
  out.resize(len);
  return out;
}

// The CPU decode of payload onto (or into) a copy of init.
inline std::vector<float> cpu_decode(const Compressor& c, const std::vector<uint8_t>& payload,
                                     std::vector<float> init, bool accumulate) {
  c.decode(payload.data(), payload.size(),
           TensorView::of(init.data(), static_cast<int64_t>(init.size())), accumulate);
  return init;
}

// Equal bytes, or a failure naming the first differing byte.
template <typename T>
void expect_same_bytes(const std::vector<T>& want, const std::vector<T>& got,
                       const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  const auto* a = reinterpret_cast<const uint8_t*>(want.data());
  const auto* b = reinterpret_cast<const uint8_t*>(got.data());
  const size_t bytes = want.size() * sizeof(T);
  if (bytes == 0 || std::memcmp(a, b, bytes) == 0) return;
  size_t i = 0;
  while (a[i] == b[i]) ++i;
  ADD_FAILURE() << what << ": first difference at byte " << i << " (element " << i / sizeof(T)
                << " of " << want.size() << "): CPU 0x" << std::hex << int{a[i]} << ", GPU 0x"
                << int{b[i]} << std::dec;
}

// Equal floats bit for bit, except that any two NaNs match: the GPU's arithmetic returns the
// canonical NaN (0x7fffffff) where the CPU's keeps the operand's payload.
inline void expect_same_floats_any_nan(const std::vector<float>& want,
                                       const std::vector<float>& got, const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(want[i]) && std::isnan(got[i])) continue;
    uint32_t a, b;
    std::memcpy(&a, &want[i], 4);
    std::memcpy(&b, &got[i], 4);
    if (a != b) {
      ADD_FAILURE() << what << ": element " << i << ": CPU " << want[i] << " (0x" << std::hex << a
                    << "), GPU " << got[i] << " (0x" << b << std::dec << ")";
      return;
    }
  }
}

// The body of a payload (after the 32-byte header).
inline std::vector<uint8_t> body_of(const std::vector<uint8_t>& payload) {
  return std::vector<uint8_t>(payload.begin() + 32, payload.end());
}

}  // namespace terse::codec_test

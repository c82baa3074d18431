// Random-k on the GPU (terse/kernels/cuda_rand_k.h): the CPU's coordinates, pi(0..k-1) of the
// keyed permutation (terse/kernels/rand_k_permutation.h), one thread each, then a radix sort.
#include <cub/device/device_radix_sort.cuh>

#include "codec_util.cuh"
#include "terse/kernels/cuda_rand_k.h"
#include "terse/kernels/rand_k_permutation.h"

namespace terse {

using namespace cuda_codec;

namespace {

constexpr int kThreads = 256;

// keys[j] = pi(j), the permutation's first k outputs (any order; sorted next).
__global__ void __launch_bounds__(kThreads)
    permute_kernel(RandKPermutation pi, uint32_t k, uint32_t* __restrict__ keys) {
  const int64_t j = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (j >= k) return;
  keys[j] = static_cast<uint32_t>(pi(static_cast<uint64_t>(j)));
}

// idx[j] = j: the first n outputs of a permutation of [0, n) are all of [0, n).
__global__ void __launch_bounds__(kThreads) iota_kernel(uint32_t k, uint32_t* __restrict__ idx) {
  const int64_t j = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (j < k) idx[j] = static_cast<uint32_t>(j);
}

__global__ void __launch_bounds__(kThreads)
    widen_kernel(const uint32_t* __restrict__ in, int64_t k, int64_t* __restrict__ out) {
  const int64_t j = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (j < k) out[j] = in[j];
}

__global__ void __launch_bounds__(kThreads)
    gather_kernel(const float* __restrict__ x, const uint32_t* __restrict__ idx, int64_t k,
                  float factor, bool half, uint8_t* __restrict__ out) {
  const int64_t j = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (j >= k) return;
  const float v = x[idx[j]] * factor;
  if (half) {
    const uint16_t b = to_half(v).bits;
    out[2 * j] = static_cast<uint8_t>(b);
    out[2 * j + 1] = static_cast<uint8_t>(b >> 8);
  } else {
    const uint32_t b = __float_as_uint(v);
    for (int i = 0; i < 4; ++i) out[4 * j + i] = static_cast<uint8_t>(b >> (8 * i));
  }
}

__global__ void __launch_bounds__(kThreads)
    scatter_values_kernel(const uint8_t* __restrict__ p, const uint32_t* __restrict__ idx,
                          int64_t k, bool half, float* __restrict__ out) {
  const int64_t j = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (j >= k) return;
  float v;
  if (half) {
    v = to_float(Half{static_cast<uint16_t>(p[2 * j] | p[2 * j + 1] << 8)});
  } else {
    uint32_t b = 0;
    for (int i = 0; i < 4; ++i) b |= uint32_t{p[4 * j + i]} << (8 * i);
    v = __uint_as_float(b);
  }
  out[idx[j]] += v;  // the indices are distinct
}

void check_nk(int64_t n, int64_t k, const char* fn) {
  check_numel(n, fn);
  TERSE_CHECK(n < (int64_t{1} << 32), InvalidArgument, fn, ": numel ", n,
              " is not below 2^32; split the tensor (the GPU sorts 32-bit indices)");
  TERSE_CHECK(k >= 0 && k <= n && (k > 0 || n == 0), InvalidArgument, fn, ": k ", k,
              " is out of range for numel ", n, "; expected 1 <= k <= numel (RandK::k_for)");
}

bool half_values(DType values, const char* fn) {
  TERSE_CHECK(values == DType::kF32 || values == DType::kF16, InvalidArgument, fn, ": values ",
              dtype_name(values), " is not supported; expected f32 or f16");
  return values == DType::kF16;
}

// The k ascending indices, in scratch. n < 2^32 (check_nk), so 32-bit keys.
const uint32_t* make_indices(int64_t n, int64_t k, uint64_t seed_step) {
  auto* sorted = static_cast<uint32_t*>(scratch(Scratch::kIndices, static_cast<size_t>(k) * 4));
  if (k == 0) return sorted;
  const auto uk = static_cast<uint32_t>(k);
  const unsigned grid = blocks_for(k, kThreads);
  if (k == n) {
    iota_kernel<<<grid, kThreads>>>(uk, sorted);
    check_launch("iota_kernel launch");
    return sorted;
  }
  const RandKPermutation pi(static_cast<uint64_t>(n), seed_step);
  auto* keys = static_cast<uint32_t*>(scratch(Scratch::kPartials, static_cast<size_t>(k) * 4));
  permute_kernel<<<grid, kThreads>>>(pi, uk, keys);
  check_launch("permute_kernel launch");
  // Only the bits a value below n can have: pi's values are below n <= 2^bits.
  int bits = 1;
  while (bits < 32 && (uint64_t{1} << bits) < static_cast<uint64_t>(n)) ++bits;
  size_t tmp_bytes = 0;
  cuda_check(cub::DeviceRadixSort::SortKeys(nullptr, tmp_bytes, keys, sorted, k, 0, bits),
             "cub::DeviceRadixSort::SortKeys (size)");
  void* tmp = scratch(Scratch::kCub, tmp_bytes);
  cuda_check(cub::DeviceRadixSort::SortKeys(tmp, tmp_bytes, keys, sorted, k, 0, bits),
             "cub::DeviceRadixSort::SortKeys");
  return sorted;
}

}  // namespace

void cuda_rand_k_indices(int64_t n, int64_t k, uint64_t seed_step, int64_t* idx) {
  check_nk(n, k, "cuda_rand_k_indices");
  check_device_ptr(idx, k, "cuda_rand_k_indices", "idx");
  const uint32_t* sorted = make_indices(n, k, seed_step);
  if (k > 0) {
    widen_kernel<<<blocks_for(k, kThreads), kThreads>>>(sorted, k, idx);
    check_launch("widen_kernel launch");
  }
  cuda_check(cudaDeviceSynchronize(), "cuda_rand_k_indices");
}

size_t cuda_rand_k_body_bytes(int64_t k, DType values) {
  const bool half = half_values(values, "cuda_rand_k_body_bytes");
  TERSE_CHECK(k >= 0, InvalidArgument, "cuda_rand_k_body_bytes: k ", k, " is negative");
  return 8 + static_cast<size_t>(k) * (half ? 2 : 4);
}

size_t cuda_rand_k_encode(const float* x, int64_t n, int64_t k, bool scale, DType values,
                          uint64_t seed_step, uint8_t* body, size_t body_cap) {
  const char* fn = "cuda_rand_k_encode";
  const bool half = half_values(values, fn);
  check_nk(n, k, fn);
  const size_t need = cuda_rand_k_body_bytes(k, values);
  check_cap(body_cap, need, n, fn);
  check_device_ptr(x, n, fn, "x");
  check_device_ptr(body, static_cast<int64_t>(need), fn, "body");
  const uint32_t* idx = make_indices(n, k, seed_step);
  const float factor =
      scale && n > 0 ? static_cast<float>(static_cast<double>(n) / static_cast<double>(k)) : 1.0f;
  uint8_t head[8];
  put_u64(head, seed_step);
  to_device(body, head, sizeof head, "copy of the rand-k seed");
  if (k > 0) {
    gather_kernel<<<blocks_for(k, kThreads), kThreads>>>(x, idx, k, factor, half, body + 8);
    check_launch("gather_kernel launch");
  }
  cuda_check(cudaDeviceSynchronize(), fn);
  return need;
}

void cuda_rand_k_decode(const uint8_t* body, size_t body_bytes, int64_t k, DType values, float* out,
                        int64_t n, bool accumulate) {
  const char* fn = "cuda_rand_k_decode";
  const bool half = half_values(values, fn);
  check_nk(n, k, fn);
  check_device_ptr(body, static_cast<int64_t>(body_bytes), fn, "body");
  check_device_ptr(out, n, fn, "out");
  check_body_bytes(body_bytes, cuda_rand_k_body_bytes(k, values), n, "randk");
  uint8_t head[8];
  to_host(head, body, sizeof head, "copy of the rand-k seed");
  const uint64_t seed = get_u64(head);
  const uint32_t* idx = make_indices(n, k, seed);
  if (!accumulate && n > 0) {
    cuda_check(cudaMemsetAsync(out, 0, static_cast<size_t>(n) * sizeof(float)),
               "cudaMemsetAsync of out");
  }
  if (k > 0) {
    scatter_values_kernel<<<blocks_for(k, kThreads), kThreads>>>(body + 8, idx, k, half, out);
    check_launch("scatter_values_kernel launch");
  }
  cuda_check(cudaDeviceSynchronize(), fn);
}

}  // namespace terse

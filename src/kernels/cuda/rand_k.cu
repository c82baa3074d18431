// Random-k on the GPU (terse/kernels/cuda_rand_k.h): the CPU's Floyd draws, exactly.
#include <thrust/iterator/counting_iterator.h>
#include <cub/device/device_select.cuh>

#include <cstring>

#include "codec_util.cuh"
#include "terse/core/philox.h"
#include "terse/kernels/cuda_rand_k.h"

namespace terse {

using namespace cuda_codec;

namespace {

constexpr int kThreads = 256;
constexpr int kWalkThreads = 512;
// RandK's Philox stream (src/compress/rand_k.cc); must stay equal.
constexpr uint64_t kRandKStream = 0x52414e444bull;  // "RANDK"

__device__ __forceinline__ uint32_t word_at(const Philox4x32& gen, uint64_t q) {
  const Philox4x32::U4 r = gen.at(q / 4, kRandKStream);
  const uint32_t lane = static_cast<uint32_t>(q % 4);
  return lane == 0 ? r.x : (lane == 1 ? r.y : (lane == 2 ? r.z : r.w));
}

// One block walks the word stream kWalkThreads words at a time. Thread t holds word q0 + t and
// assumes it belongs to draw d0 + t - (rejections before it); the first rejected word
// invalidates that assumption only for the words after it, which test again with one more
// rejection counted, until a pass has none. Draw d's bound is n - k + d + 1 (Floyd's j + 1) and
// its value (w * bound) >> 32 once a word passes Lemire's test (low half >= 2^32 mod bound).
__global__ void __launch_bounds__(kWalkThreads)
    floyd_draws_kernel(uint64_t seed_step, uint32_t n, uint32_t k, uint32_t* __restrict__ t) {
  __shared__ int s_first;
  const Philox4x32 gen(seed_step);
  uint64_t q0 = 0;
  uint32_t d0 = 0;
  const int tid = static_cast<int>(threadIdx.x);
  while (d0 < k) {
    const uint32_t w = word_at(gen, q0 + static_cast<uint64_t>(tid));
    int resolved = 0;
    uint32_t rejected = 0;
    for (;;) {
      if (tid == 0) s_first = kWalkThreads;
      __syncthreads();
      bool reject = false;
      uint32_t d = 0, bound = 0;
      if (tid >= resolved) {
        d = d0 + static_cast<uint32_t>(tid) - rejected;  // rejected <= resolved <= tid
        if (d < k) {
          bound = n - k + d + 1;
          const uint32_t threshold = (0u - bound) % bound;
          reject = static_cast<uint32_t>(uint64_t{w} * bound) < threshold;
        }
        if (reject) atomicMin(&s_first, tid);
      }
      __syncthreads();
      const int first = s_first;
      if (tid >= resolved && tid < first && d < k) {
        t[d] = static_cast<uint32_t>((uint64_t{w} * bound) >> 32);
      }
      __syncthreads();  // s_first is reset next pass
      if (first == kWalkThreads) break;
      ++rejected;
      resolved = first + 1;
    }
    d0 += kWalkThreads - rejected;
    q0 += kWalkThreads;
  }
}

// first[v] = the first draw whose value is v.
__global__ void __launch_bounds__(kThreads)
    first_draw_kernel(const uint32_t* __restrict__ t, uint32_t k, uint32_t* __restrict__ first) {
  const int64_t d = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (d >= k) return;
  atomicMin(first + t[d], static_cast<uint32_t>(d));
}

// Floyd's set: every drawn value, and slot n - k + d for each draw d whose value was already
// taken before it, either drawn earlier (first[v] < d) or itself a slot n - k + d' (d' < d)
// taken by a collision of draw d' (the chain).
__global__ void __launch_bounds__(kThreads)
    mark_taken_kernel(const uint32_t* __restrict__ t, const uint32_t* __restrict__ first,
                      uint32_t n, uint32_t k, uint8_t* __restrict__ taken) {
  const int64_t d = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (d >= k) return;
  const uint32_t base = n - k;
  taken[t[d]] = 1;
  uint32_t cur = static_cast<uint32_t>(d);
  bool collision = false;
  for (;;) {
    const uint32_t v = t[cur];
    if (first[v] < cur) {
      collision = true;
      break;
    }
    if (v >= base && v - base < cur) {
      cur = v - base;
      continue;
    }
    break;
  }
  if (collision) taken[base + d] = 1;
}

__global__ void __launch_bounds__(kThreads)
    gather_kernel(const float* __restrict__ x, const int64_t* __restrict__ idx, int64_t k,
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
    scatter_values_kernel(const uint8_t* __restrict__ p, const int64_t* __restrict__ idx, int64_t k,
                          bool half, float* __restrict__ out) {
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
              " is not below 2^32; split the tensor (the GPU draws take the 32-bit path)");
  TERSE_CHECK(k >= 0 && k <= n && (k > 0 || n == 0), InvalidArgument, fn, ": k ", k,
              " is out of range for numel ", n, "; expected 1 <= k <= numel (RandK::k_for)");
}

bool half_values(DType values, const char* fn) {
  TERSE_CHECK(values == DType::kF32 || values == DType::kF16, InvalidArgument, fn, ": values ",
              dtype_name(values), " is not supported; expected f32 or f16");
  return values == DType::kF16;
}

// The indices into scratch (or into idx when given).
int64_t* make_indices(int64_t n, int64_t k, uint64_t seed_step, int64_t* idx) {
  if (idx == nullptr) {
    idx = static_cast<int64_t*>(scratch(Scratch::kIndices, static_cast<size_t>(k) * 8));
  }
  if (k == 0) return idx;
  const auto un = static_cast<uint32_t>(n), uk = static_cast<uint32_t>(k);
  auto* t = static_cast<uint32_t*>(scratch(Scratch::kPartials, static_cast<size_t>(k) * 4));
  auto* first = static_cast<uint32_t*>(scratch(Scratch::kPartials2, static_cast<size_t>(n) * 4));
  auto* taken = static_cast<uint8_t*>(scratch(Scratch::kChunkSums, static_cast<size_t>(n)));
  cuda_check(cudaMemsetAsync(first, 0xff, static_cast<size_t>(n) * 4), "cudaMemsetAsync");
  cuda_check(cudaMemsetAsync(taken, 0, static_cast<size_t>(n)), "cudaMemsetAsync");
  floyd_draws_kernel<<<1, kWalkThreads>>>(seed_step, un, uk, t);
  check_launch("floyd_draws_kernel launch");
  first_draw_kernel<<<blocks_for(k, kThreads), kThreads>>>(t, uk, first);
  check_launch("first_draw_kernel launch");
  mark_taken_kernel<<<blocks_for(k, kThreads), kThreads>>>(t, first, un, uk, taken);
  check_launch("mark_taken_kernel launch");
  auto* count = static_cast<int64_t*>(scratch(Scratch::kFlags, sizeof(int64_t)));
  size_t tmp_bytes = 0;
  const thrust::counting_iterator<int64_t> iota(0);
  cuda_check(cub::DeviceSelect::Flagged(nullptr, tmp_bytes, iota, taken, idx, count, n),
             "cub::DeviceSelect::Flagged (size)");
  void* tmp = scratch(Scratch::kCub, tmp_bytes);
  cuda_check(cub::DeviceSelect::Flagged(tmp, tmp_bytes, iota, taken, idx, count, n),
             "cub::DeviceSelect::Flagged");
  int64_t selected = 0;
  to_host(&selected, count, sizeof selected, "copy of the rand-k count");
  TERSE_CHECK(selected == k, CudaError, "cuda_rand_k: internal error, ", selected,
              " indices selected for k = ", k, " (numel ", n, ")");
  return idx;
}

}  // namespace

void cuda_rand_k_indices(int64_t n, int64_t k, uint64_t seed_step, int64_t* idx) {
  check_nk(n, k, "cuda_rand_k_indices");
  check_device_ptr(idx, k, "cuda_rand_k_indices", "idx");
  make_indices(n, k, seed_step, idx);
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
  const int64_t* idx = make_indices(n, k, seed_step, nullptr);
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
  const int64_t* idx = make_indices(n, k, seed, nullptr);
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

// fp16 / bf16 cast bodies on the GPU (terse/kernels/cuda_cast_codec.h), with the CPU's rounding
// functions (terse/core/dtype.h), so the same bytes.
#include <cstdint>

#include "codec_util.cuh"
#include "terse/kernels/cuda_cast_codec.h"

namespace terse {

using namespace cuda_codec;

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ uint16_t round_to(float v, bool half) {
  return half ? to_half(v).bits : to_bfloat16(v).bits;
}
__device__ __forceinline__ float widen(uint16_t b, bool half) {
  return half ? to_float(Half{b}) : to_float(BFloat16{b});
}

// aligned: body is 2-byte aligned, so a 16-bit store writes the little-endian pair at once.
__global__ void __launch_bounds__(kThreads)
    cast_encode_kernel(const float* __restrict__ x, int64_t n, bool half, bool aligned,
                       uint8_t* __restrict__ out) {
  const int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (i >= n) return;
  const uint16_t b = round_to(x[i], half);
  if (aligned) {
    reinterpret_cast<uint16_t*>(out)[i] = b;  // the GPU is little-endian
  } else {
    out[2 * i] = static_cast<uint8_t>(b);
    out[2 * i + 1] = static_cast<uint8_t>(b >> 8);
  }
}

__global__ void __launch_bounds__(kThreads)
    cast_decode_kernel(const uint8_t* __restrict__ p, int64_t n, bool half, bool aligned,
                       float* __restrict__ out, bool accumulate) {
  const int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (i >= n) return;
  const uint16_t b = aligned ? reinterpret_cast<const uint16_t*>(p)[i]
                             : static_cast<uint16_t>(p[2 * i] | p[2 * i + 1] << 8);
  const float v = widen(b, half);
  out[i] = accumulate ? out[i] + v : v;
}

bool is_half(DType coding, const char* fn) {
  TERSE_CHECK(coding == DType::kF16 || coding == DType::kBF16, InvalidArgument, fn, ": coding ",
              dtype_name(coding), " is not supported; expected f16 or bf16");
  return coding == DType::kF16;
}

}  // namespace

size_t cuda_cast_body_bytes(int64_t n) {
  check_numel(n, "cuda_cast_body_bytes");
  return 2 * static_cast<size_t>(n);
}

size_t cuda_cast_encode(const float* x, int64_t n, DType coding, uint8_t* body, size_t body_cap) {
  const bool half = is_half(coding, "cuda_cast_encode");
  const size_t need = cuda_cast_body_bytes(n);
  check_cap(body_cap, need, n, "cuda_cast_encode");
  check_device_ptr(x, n, "cuda_cast_encode", "x");
  check_device_ptr(body, n, "cuda_cast_encode", "body");
  if (n == 0) return 0;
  const bool aligned = reinterpret_cast<uintptr_t>(body) % 2 == 0;
  cast_encode_kernel<<<blocks_for(n, kThreads), kThreads>>>(x, n, half, aligned, body);
  check_launch("cast_encode_kernel launch");
  cuda_check(cudaDeviceSynchronize(), "cast encode");
  return need;
}

void cuda_cast_decode(const uint8_t* body, size_t body_bytes, DType coding, float* out, int64_t n,
                      bool accumulate) {
  const bool half = is_half(coding, "cuda_cast_decode");
  check_numel(n, "cuda_cast_decode");
  check_device_ptr(body, static_cast<int64_t>(body_bytes), "cuda_cast_decode", "body");
  check_device_ptr(out, n, "cuda_cast_decode", "out");
  check_body_bytes(body_bytes, 2 * static_cast<size_t>(n), n, half ? "fp16" : "bf16");
  if (n == 0) return;
  const bool aligned = reinterpret_cast<uintptr_t>(body) % 2 == 0;
  cast_decode_kernel<<<blocks_for(n, kThreads), kThreads>>>(body, n, half, aligned, out,
                                                            accumulate);
  check_launch("cast_decode_kernel launch");
  cuda_check(cudaDeviceSynchronize(), "cast decode");
}

}  // namespace terse

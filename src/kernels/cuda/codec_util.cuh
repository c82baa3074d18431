#pragma once

// Helpers shared by the CUDA kernels of src/kernels/cuda (the codecs, terse/kernels/cuda_*_codec.h,
// and the optimizer launches): error checks, argument checks on device pointers, reusable device
// scratch, MSB-first bit fields as the CPU's BitWriter writes them. Internal to src/kernels/cuda.

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "terse/core/check.h"
#include "terse/kernels/payload_fields.h"

namespace terse::cuda_codec {

inline void cuda_check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    TERSE_THROW(CudaError, what, " failed: ", cudaGetErrorName(err), " (", cudaGetErrorString(err),
                ")");
  }
}

// Throws InvalidArgument unless ptr is device (or managed) memory of the current device, or
// null with `count` 0. `fn` and `arg` name the call and the argument in the message.
void check_device_ptr(const void* ptr, int64_t count, const char* fn, const char* arg);

// Throws InvalidArgument unless 0 <= n <= 2^48 (the compressors' kMaxNumel).
void check_numel(int64_t n, const char* fn);

// Device memory reused across calls, one buffer per (slot, device, host thread). Every user runs
// on the legacy default stream, so work that reads a buffer is ordered before the next call
// that rewrites it. Slots keep the buffers of one call apart.
enum class Scratch {
  kPartials,
  kPartials2,
  kChunkSums,
  kChunkPrefix,
  kChunkFns,
  kCub,
  kFlags,
  kIndices,
  kLaunchTable,  // the multi-tensor launches' tables of tensors (launch_table.cuh)
  kRowSums,      // the projected step's working memory (piece and row sums, the views)
  kQuantMaps,    // the 8-bit step's quantization maps (eightbit_step.cu), kept between steps
  kCount
};
void* scratch(Scratch slot, size_t bytes);

// Copies `bytes` device to host after the work enqueued on the default stream (synchronous).
inline void to_host(void* dst, const void* src, size_t bytes, const char* what) {
  cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), what);
}
inline void to_device(void* dst, const void* src, size_t bytes, const char* what) {
  cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), what);
}
inline void check_launch(const char* what) { cuda_check(cudaGetLastError(), what); }

// Little-endian scalars of a body and the checks of its scales, as the CPU compressors have them.
using payload::checked_onebit_means;
using payload::checked_scale;
using payload::get_f32;
using payload::get_u32;
using payload::get_u64;
using payload::put_f32;
using payload::put_u32;
using payload::put_u64;

// Throws InvalidArgument unless cap >= need.
void check_cap(size_t cap, size_t need, int64_t n, const char* fn);
// Throws CorruptData unless the body length is the one numel n implies.
void check_body_bytes(size_t got, size_t expected, int64_t n, const char* what);
// Throws CorruptData unless the padding bits after `used_bits` bits in the last byte are zero.
void check_padding(const uint8_t* body, size_t body_bytes, uint64_t used_bits, const char* what);

inline unsigned blocks_for(int64_t items, int threads) {
  return static_cast<unsigned>((items + threads - 1) / threads);
}

inline size_t packed_bytes(int64_t count, unsigned bits) {
  return static_cast<size_t>((static_cast<uint64_t>(count) * bits + 7) / 8);
}

// The field of `bits` (<= 16) bits of element i in an MSB-first packed stream of `total` bytes.
__device__ __forceinline__ uint32_t get_field(const uint8_t* p, size_t total, int64_t i,
                                              unsigned bits) {
  const uint64_t bit = static_cast<uint64_t>(i) * bits;
  const size_t b = static_cast<size_t>(bit >> 3);
  const unsigned off = static_cast<unsigned>(bit & 7);
  uint32_t w = uint32_t{p[b]} << 16;
  if (b + 1 < total) w |= uint32_t{p[b + 1]} << 8;
  if (b + 2 < total) w |= uint32_t{p[b + 2]};
  return (w >> (24 - off - bits)) & ((1u << bits) - 1);
}

// Writes the fields of elements [8g, min(8g + 8, n)) of `bits` bits each, MSB-first: group g
// owns bytes [g * bits, (g + 1) * bits), so groups never share a byte; the last group's last
// byte is zero padded, as the CPU's BitWriter::finish does.
template <typename FieldAt>
__device__ __forceinline__ void put_group(uint8_t* out, int64_t n, int64_t g, unsigned bits,
                                          FieldAt field_at) {
  const int64_t first = 8 * g;
  const int cnt = static_cast<int>(n - first < 8 ? n - first : 8);
  uint64_t acc = 0;
  unsigned have = 0;
  uint8_t* o = out + g * bits;
  for (int j = 0; j < cnt; ++j) {
    acc = (acc << bits) | field_at(first + j);
    have += bits;
    while (have >= 8) {
      have -= 8;
      *o++ = static_cast<uint8_t>(acc >> have);
    }
    acc &= (uint64_t{1} << have) - 1;
  }
  if (have > 0) *o = static_cast<uint8_t>(acc << (8 - have));
}

}  // namespace terse::cuda_codec

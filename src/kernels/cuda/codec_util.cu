// Argument checks and device scratch for the CUDA codecs (codec_util.cuh).
#include <array>

#include "codec_util.cuh"

namespace terse::cuda_codec {
namespace {

constexpr int kMaxDevices = 64;
constexpr int kSlots = static_cast<int>(Scratch::kCount);

struct Buffer {
  void* ptr = nullptr;
  size_t bytes = 0;
};
thread_local std::array<std::array<Buffer, kSlots>, kMaxDevices> g_scratch;

}  // namespace

void check_numel(int64_t n, const char* fn) {
  TERSE_CHECK(n >= 0 && n <= (int64_t{1} << 48), InvalidArgument, fn, ": numel ", n,
              " is out of range; expected 0 <= numel <= 2^48");
}

void check_device_ptr(const void* ptr, int64_t count, const char* fn, const char* arg) {
  if (count == 0) return;
  TERSE_CHECK(ptr != nullptr, InvalidArgument, fn, ": ", arg, " is null for ", count,
              " elements; pass a device pointer");
  cudaPointerAttributes attr{};
  cuda_check(cudaPointerGetAttributes(&attr, ptr), "cudaPointerGetAttributes");
  TERSE_CHECK(attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged,
              InvalidArgument, fn, ": ", arg, " (", ptr, ") is ",
              attr.type == cudaMemoryTypeHost ? "pinned host" : "host",
              " memory; pass memory allocated on the GPU (cudaMalloc)");
  int device = 0;
  cuda_check(cudaGetDevice(&device), "cudaGetDevice");
  TERSE_CHECK(attr.type == cudaMemoryTypeManaged || attr.device == device, InvalidArgument, fn,
              ": ", arg, " is on cuda:", attr.device, " but the current device is cuda:", device,
              "; call cudaSetDevice(", attr.device, ") first");
}

void check_cap(size_t cap, size_t need, int64_t n, const char* fn) {
  TERSE_CHECK(cap >= need, InvalidArgument, fn, ": body capacity ", cap, " bytes is below the ",
              need, " bytes of the body for numel ", n, "; size it with the *_body_bytes call");
}

void check_body_bytes(size_t got, size_t expected, int64_t n, const char* what) {
  TERSE_CHECK(got == expected, CorruptData, "payload: ", what, " body length ", got,
              " bytes, expected ", expected, " for numel ", n);
}

void check_padding(const uint8_t* body, size_t body_bytes, uint64_t used_bits, const char* what) {
  const auto tail = static_cast<unsigned>(used_bits % 8);
  if (tail == 0) return;
  uint8_t last = 0;
  to_host(&last, body + body_bytes - 1, 1, "copy of the last body byte");
  const unsigned pad = last & ((1u << (8 - tail)) - 1);
  TERSE_CHECK(pad == 0, CorruptData, "payload: padding bits after the last ", what, " are 0x",
              std::hex, pad, std::dec, ", expected 0");
}

void* scratch(Scratch slot, size_t bytes) {
  int device = 0;
  cuda_check(cudaGetDevice(&device), "cudaGetDevice");
  TERSE_CHECK(device >= 0 && device < kMaxDevices, CudaError, "device index ", device,
              " is out of range for the codec scratch (at most ", kMaxDevices, " devices)");
  Buffer& b = g_scratch[static_cast<size_t>(device)][static_cast<size_t>(slot)];
  if (bytes == 0) bytes = 1;
  if (b.bytes < bytes) {
    if (b.ptr != nullptr) cuda_check(cudaFree(b.ptr), "cudaFree of codec scratch");
    b.ptr = nullptr;
    b.bytes = 0;
    // Round up so slowly growing requests do not reallocate each call.
    const size_t want = bytes + bytes / 4;
    cuda_check(cudaMalloc(&b.ptr, want), "cudaMalloc of codec scratch");
    b.bytes = want;
  }
  return b.ptr;
}

}  // namespace terse::cuda_codec

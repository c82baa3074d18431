#pragma once

// Device memory owned by one object, and the element-wise chores of a gradient buffer on the
// GPU (the data-parallel engine's buckets): zeroing and dividing by the world size. Every call
// is enqueued on the legacy default stream, where libtorch's kernels and terse's optimizer
// steps run, so it is ordered with them without an explicit synchronisation. A build without
// CUDA throws CudaError from each, saying so.

#include <cstddef>
#include <cstdint>
#include <utility>

#include "terse/core/tensor_view.h"
#include "terse/kernels/cuda_multi_tensor.h"

namespace terse {

// Sets `bytes` of device memory at `ptr` to zero (asynchronous; nullptr with 0 bytes: nothing).
void cuda_zero(void* ptr, size_t bytes);

// x[i] = x[i] / divisor for every element of a CUDA view (f32, bf16 or f16; the math in f32 with
// IEEE division, so the bits equal the host's load_as_float(x, i) / divisor). Asynchronous.
// Throws InvalidArgument for a view that is not on a CUDA device or not floating point.
void cuda_divide(const TensorView& x, float divisor);
// x[i] = x[i] * factor, as cuda_divide (the host's x * factor, bit for bit).
void cuda_multiply(const TensorView& x, float factor);

// Whether every element of a CUDA view (f32, bf16 or f16) is finite: one pass, then a wait for
// the answer. InvalidArgument as cuda_divide.
bool cuda_all_finite(const TensorView& x);

// `bytes` of zero-filled memory on CUDA device `device`, freed with the object; moves, does not
// copy. CudaError when the runtime cannot allocate it.
class CudaBuffer {
 public:
  CudaBuffer() = default;
  CudaBuffer(int device, size_t bytes)
      : device_(device), bytes_(bytes), data_(cuda_alloc_zeroed(device, bytes)) {}
  CudaBuffer(CudaBuffer&& o) noexcept { swap(o); }
  CudaBuffer& operator=(CudaBuffer&& o) noexcept {
    CudaBuffer(std::move(o)).swap(*this);
    return *this;
  }
  CudaBuffer(const CudaBuffer&) = delete;
  CudaBuffer& operator=(const CudaBuffer&) = delete;
  ~CudaBuffer() { cuda_free(data_); }

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  int device() const { return device_; }

 private:
  void swap(CudaBuffer& o) noexcept {
    std::swap(device_, o.device_);
    std::swap(bytes_, o.bytes_);
    std::swap(data_, o.data_);
  }

  int device_ = 0;
  size_t bytes_ = 0;
  void* data_ = nullptr;
};

// b holds at least `count` T (one, for count 0) on CUDA device `device`: reallocated, zeroed,
// when it is smaller or on another device, else left as it is. For scratch a GPU path keeps
// between calls.
template <typename T>
T* cuda_ensure(CudaBuffer& b, int device, int64_t count) {
  const size_t bytes = sizeof(T) * static_cast<size_t>(count > 0 ? count : 1);
  if (b.data() == nullptr || b.bytes() < bytes || b.device() != device) {
    b = CudaBuffer(device, bytes);
  }
  return static_cast<T*>(b.data());
}

}  // namespace terse

#pragma once

// A copy of some host bytes in one GPU's memory (FRUGAL's coord-mode masks), freed with it;
// moves, does not copy. Empty (null) for zero bytes.

#include <cstddef>
#include <utility>

#include "terse/kernels/cuda_multi_tensor.h"

namespace terse::optim_detail {

class DeviceBytes {
 public:
  DeviceBytes() = default;
  DeviceBytes(int device, const void* host, size_t bytes) : bytes_(bytes) {
    data_ = cuda_alloc_zeroed(device, bytes);
    try {
      cuda_copy(data_, host, bytes);
    } catch (...) {
      cuda_free(data_);
      throw;
    }
  }
  DeviceBytes(DeviceBytes&& o) noexcept { swap(o); }
  DeviceBytes& operator=(DeviceBytes&& o) noexcept {
    DeviceBytes(std::move(o)).swap(*this);
    return *this;
  }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
  ~DeviceBytes() { cuda_free(data_); }

  const void* data() const { return data_; }
  size_t size() const { return bytes_; }

 private:
  void swap(DeviceBytes& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(bytes_, o.bytes_);
  }

  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace terse::optim_detail

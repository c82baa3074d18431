#pragma once

// One array of optimizer state (an element-wise optimizer's m or v, an 8-bit optimizer's codes
// or absmax, a matrix optimizer's momentum): in host memory for CPU parameters, in the memory of
// the parameters' GPU for CUDA ones, which the CUDA steps update in place. Moves, does not copy.

#include <cstddef>
#include <utility>
#include <vector>

#include "terse/core/device.h"
#include "terse/kernels/cuda_multi_tensor.h"

namespace terse::optim_detail {

template <typename T>
class StateArray {
 public:
  StateArray() = default;
  // n zeros on `device`, as torch creates state lazily with zeros.
  StateArray(Device device, size_t n) : device_(device), size_(n) {
    if (device.is_cuda()) {
      device_data_ = static_cast<T*>(cuda_alloc_zeroed(device.index, n * sizeof(T)));
    } else {
      host_.assign(n, T{});
    }
  }
  // `values` on `device`: kept as they are for the CPU, copied into a GPU's memory.
  StateArray(Device device, std::vector<T> values) : device_(device), size_(values.size()) {
    if (device.is_cuda()) {
      device_data_ = static_cast<T*>(cuda_alloc_zeroed(device.index, size_ * sizeof(T)));
      try {
        cuda_copy(device_data_, values.data(), size_ * sizeof(T));
      } catch (...) {
        cuda_free(device_data_);
        throw;
      }
    } else {
      host_ = std::move(values);
    }
  }
  StateArray(StateArray&& o) noexcept { swap(o); }
  StateArray& operator=(StateArray&& o) noexcept {
    StateArray(std::move(o)).swap(*this);
    return *this;
  }
  StateArray(const StateArray&) = delete;
  StateArray& operator=(const StateArray&) = delete;
  ~StateArray() { cuda_free(device_data_); }

  T* data() { return device_.is_cuda() ? device_data_ : host_.data(); }
  const T* data() const { return device_.is_cuda() ? device_data_ : host_.data(); }
  size_t size() const { return size_; }
  Device device() const { return device_; }

  // The values in host memory: the array itself on the CPU; for a GPU, a copy made into
  // `scratch` (after the work enqueued on the default stream), which the pointer points into.
  const T* host_data(std::vector<T>& scratch) const {
    if (!device_.is_cuda()) return host_.data();
    scratch.resize(size_);
    cuda_copy(scratch.data(), device_data_, size_ * sizeof(T));
    return scratch.data();
  }

 private:
  void swap(StateArray& o) noexcept {
    std::swap(device_, o.device_);
    std::swap(size_, o.size_);
    std::swap(host_, o.host_);
    std::swap(device_data_, o.device_data_);
  }

  Device device_ = Device::cpu();
  size_t size_ = 0;
  std::vector<T> host_;
  T* device_data_ = nullptr;
};

}  // namespace terse::optim_detail

#pragma once

// One f32 state buffer of one parameter (an element-wise optimizer's m, v, ...): in host memory
// for CPU parameters, in the memory of the parameter's GPU for CUDA ones (then the CUDA executor
// updates it in place). Zero-filled when made, as torch creates state lazily with zeros; moves,
// does not copy.

#include <cstddef>
#include <utility>
#include <vector>

#include "terse/core/device.h"
#include "terse/core/tensor_view.h"
#include "terse/kernels/cuda_multi_tensor.h"

namespace terse::optim_detail {

class StateBuffer {
 public:
  StateBuffer() = default;
  StateBuffer(Device device, size_t n) : device_(device), size_(n) {
    if (device.is_cuda()) {
      device_data_ = static_cast<float*>(cuda_alloc_zeroed(device.index, n * sizeof(float)));
    } else {
      host_.assign(n, 0.0f);
    }
  }
  // Host values into a buffer on `device` (kept as they are for the CPU, copied to a GPU).
  StateBuffer(Device device, std::vector<float> values) : device_(device), size_(values.size()) {
    if (device.is_cuda()) {
      device_data_ = static_cast<float*>(cuda_alloc_zeroed(device.index, size_ * sizeof(float)));
      cuda_copy(device_data_, values.data(), size_ * sizeof(float));
    } else {
      host_ = std::move(values);
    }
  }
  StateBuffer(StateBuffer&& o) noexcept { swap(o); }
  StateBuffer& operator=(StateBuffer&& o) noexcept {
    StateBuffer(std::move(o)).swap(*this);
    return *this;
  }
  StateBuffer(const StateBuffer&) = delete;
  StateBuffer& operator=(const StateBuffer&) = delete;
  ~StateBuffer() { cuda_free(device_data_); }

  float* data() { return device_.is_cuda() ? device_data_ : host_.data(); }
  const float* data() const { return device_.is_cuda() ? device_data_ : host_.data(); }
  size_t size() const { return size_; }
  Device device() const { return device_; }

  // The values as a host-memory view: the buffer itself on the CPU; for a CUDA buffer, a copy
  // made into `scratch`, which the view points into.
  TensorView host_view(std::vector<float>& scratch) const {
    const float* values = host_.data();
    if (device_.is_cuda()) {
      scratch.resize(size_);
      cuda_copy(scratch.data(), device_data_, size_ * sizeof(float));
      values = scratch.data();
    }
    return TensorView(const_cast<float*>(values), static_cast<int64_t>(size_), DType::kF32);
  }

 private:
  void swap(StateBuffer& o) noexcept {
    std::swap(device_, o.device_);
    std::swap(size_, o.size_);
    std::swap(host_, o.host_);
    std::swap(device_data_, o.device_data_);
  }

  Device device_ = Device::cpu();
  size_t size_ = 0;
  std::vector<float> host_;
  float* device_data_ = nullptr;
};

}  // namespace terse::optim_detail

#pragma once

#include <cstdint>
#include <string>

#include "terse/core/check.h"
#include "terse/core/device.h"
#include "terse/core/dtype.h"

namespace terse {

// A non-owning view of a dense, contiguous buffer: what every layer below the torch adapter
// sees of a tensor. The owner (a torch tensor, a bucket, a test vector) outlives the view.
struct TensorView {
  void* data = nullptr;
  int64_t numel = 0;
  DType dtype = DType::kF32;
  Device device = Device::cpu();

  TensorView() = default;
  TensorView(void* d, int64_t n, DType t, Device dev = Device::cpu())
      : data(d), numel(n), dtype(t), device(dev) {}
  template <typename T>
  static TensorView of(T* d, int64_t n, Device dev = Device::cpu()) {
    return TensorView(static_cast<void*>(d), n, dtype_of<T>(), dev);
  }

  size_t nbytes() const { return static_cast<size_t>(numel) * dtype_size(dtype); }
  bool empty() const { return numel == 0; }

  // Typed access; throws InvalidArgument when T does not match the dtype.
  template <typename T>
  T* as() const {
    TERSE_CHECK(dtype_of<T>() == dtype, InvalidArgument, "tensor view holds ", dtype_name(dtype),
                " but was accessed as ", dtype_name(dtype_of<T>()));
    return static_cast<T*>(data);
  }

  // Elements [offset, offset + count) of this view.
  TensorView slice(int64_t offset, int64_t count) const;
  std::string str() const;
};

}  // namespace terse

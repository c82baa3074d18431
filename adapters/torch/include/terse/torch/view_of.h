#pragma once

#include <ATen/Tensor.h>
#include <torch/version.h>

#include "terse/core/dtype.h"
#include "terse/core/tensor_view.h"

namespace terse::torch_adapter {

// A TensorView of a tensor's storage (no copy; the tensor must outlive the view), on the CPU or
// on the tensor's CUDA device. The tensor must be contiguous, f32, bf16 or f16, and on the CPU
// or a CUDA GPU; anything else throws InvalidArgument saying what was seen and how to fix it
// (.contiguous(), .to(torch::kFloat), .cpu()).
TensorView view_of(const at::Tensor& tensor);

// The writable storage pointer of a tensor: mutable_data_ptr() where libtorch has it (2.1+,
// where data_ptr() is on its way out), data_ptr() before.
inline void* storage_ptr(const at::Tensor& tensor) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
  return tensor.mutable_data_ptr();
#else
  return tensor.data_ptr();
#endif
}

// The torch dtype of a terse floating dtype; throws InvalidArgument for the others.
c10::ScalarType scalar_type_of(DType dtype);
// The terse dtype of a torch scalar type; throws InvalidArgument unless f32, bf16 or f16.
DType dtype_of_scalar_type(c10::ScalarType type);

}  // namespace terse::torch_adapter

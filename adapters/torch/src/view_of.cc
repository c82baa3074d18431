#include "terse/torch/view_of.h"

#include <c10/core/ScalarType.h>

#include "terse/core/check.h"

namespace terse::torch_adapter {

DType dtype_of_scalar_type(c10::ScalarType type) {
  switch (type) {
    case c10::ScalarType::Float:
      return DType::kF32;
    case c10::ScalarType::BFloat16:
      return DType::kBF16;
    case c10::ScalarType::Half:
      return DType::kF16;
    default:
      TERSE_THROW(InvalidArgument, "tensor has dtype ", c10::toString(type),
                  "; terse handles float32, bfloat16 and float16: convert with .to(torch::kFloat)");
  }
}

c10::ScalarType scalar_type_of(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return c10::ScalarType::Float;
    case DType::kBF16:
      return c10::ScalarType::BFloat16;
    case DType::kF16:
      return c10::ScalarType::Half;
    default:
      TERSE_THROW(InvalidArgument, "dtype ", dtype_name(dtype),
                  " has no torch counterpart here; use f32, bf16 or f16");
  }
}

TensorView view_of(const at::Tensor& tensor) {
  TERSE_CHECK(tensor.defined(), InvalidArgument,
              "view_of got an undefined tensor; pass a tensor with storage (for a gradient: run "
              "backward first)");
  TERSE_CHECK(tensor.device().is_cpu() || tensor.device().is_cuda(), InvalidArgument,
              "view_of got a tensor on ", tensor.device().str(),
              "; terse handles CPU and CUDA tensors: call .cpu()");
  TERSE_CHECK(!tensor.is_sparse(), InvalidArgument,
              "view_of got a sparse tensor; call .to_dense()");
  TERSE_CHECK(tensor.is_contiguous(), InvalidArgument,
              "view_of got a non-contiguous tensor of shape ", tensor.sizes(), " and strides ",
              tensor.strides(), "; call .contiguous()");
  const DType dtype = dtype_of_scalar_type(tensor.scalar_type());
  const Device device =
      tensor.device().is_cuda() ? Device::cuda(tensor.device().index()) : Device::cpu();
  return TensorView(storage_ptr(tensor), tensor.numel(), dtype, device);
}

}  // namespace terse::torch_adapter

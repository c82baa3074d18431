#pragma once

#include <utility>

#include "terse/core/check.h"
#include "terse/core/dtype.h"

namespace terse {

// Calls fn(T{}) with T the C++ storage type of a floating dtype (float, BFloat16, Half).
// Kernels use it once per tensor so the element loop is compiled per type.
template <typename Fn>
decltype(auto) dispatch_floating(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kF32:
      return std::forward<Fn>(fn)(float{});
    case DType::kBF16:
      return std::forward<Fn>(fn)(BFloat16{});
    case DType::kF16:
      return std::forward<Fn>(fn)(Half{});
    default:
      TERSE_THROW(InvalidArgument, "expected a floating dtype (f32, bf16, f16), got ",
                  dtype_name(dtype));
  }
}

}  // namespace terse

#include "terse/core/tensor_view.h"

#include <sstream>

namespace terse {

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

TensorView TensorView::slice(int64_t offset, int64_t count) const {
  TERSE_CHECK(offset >= 0 && count >= 0 && offset + count <= numel, InvalidArgument,
              "slice [", offset, ", ", offset + count, ") is outside a view of ", numel,
              " elements");
  return TensorView(static_cast<uint8_t*>(data) + static_cast<size_t>(offset) * dtype_size(dtype),
                    count, dtype, device);
}

std::string TensorView::str() const {
  std::ostringstream os;
  os << "TensorView(" << numel << " x " << dtype_name(dtype) << " on " << device.str() << ")";
  return os.str();
}

}  // namespace terse

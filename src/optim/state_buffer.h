#pragma once

// One f32 state buffer of one parameter (an element-wise optimizer's m, v, ...; a matrix
// optimizer's momentum): a StateArray<float> that also gives its values as a host TensorView,
// for state_dict(). Zero-filled when made, as torch creates state lazily with zeros.

#include <cstdint>
#include <vector>

#include "state_array.h"
#include "terse/core/tensor_view.h"

namespace terse::optim_detail {

class StateBuffer : public StateArray<float> {
 public:
  using StateArray<float>::StateArray;

  // The values as a host-memory view: the buffer itself on the CPU; for a CUDA buffer, a copy
  // made into `scratch`, which the view points into.
  TensorView host_view(std::vector<float>& scratch) const {
    return TensorView(const_cast<float*>(host_data(scratch)), static_cast<int64_t>(size()),
                      DType::kF32);
  }
};

}  // namespace terse::optim_detail

#pragma once

// DGC's memory and selection on the GPU for the data-parallel exchange (dgc_exchange.cc): per
// compressed tensor, U and V in the memory of the gradients' GPU and a CudaDgcSelector, so the
// momentum correction, the selection and the masking run there (CudaDgcSelector::step, the
// CPU's bits) and only the selected pairs cross to the host. The received pairs are added on the
// GPU in rank order (cuda_scatter_add) and scaled by 1/N, the CPU decode's float operations.
// Internal to src/train.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "terse/compress/dgc/cuda_dgc_selector.h"
#include "terse/compress/dgc/dgc_memory.h"
#include "terse/core/device.h"
#include "terse/core/tensor_view.h"
#include "terse/kernels/cuda_buffer.h"

namespace terse::exchange {

class DgcGpuMemory {
 public:
  // One tensor of numels[j] elements per compressed tensor j, on CUDA device `device`; U and V
  // start at zero.
  DgcGpuMemory(Device device, const std::vector<int64_t>& numels);

  // Whether the gradient g (f32, on the device) holds only finite values.
  bool finite(const TensorView& g) const;

  // DgcMemory::step for tensor j with g on the device: U, V and g updated there; the selection
  // copied to the host (indices, values, threshold, rounds).
  SparseSelection step(size_t j, float* g, double density, uint64_t seed_step,
                       const DgcMemoryOptions& memory, const DgcSelectOptions& select);

  // out (a compressed tensor's gradient, on the device) = (lists[0] + lists[1] + ...) * scale,
  // added in that order, zero where no list has an entry. The lists' indices were validated by
  // the decoder; cuda_scatter_add checks them again.
  void aggregate(const std::vector<SparseSelection>& lists, const TensorView& out, float scale);

  size_t size() const { return u_.size(); }
  int64_t numel(size_t j) const { return numels_[j]; }
  size_t state_bytes() const;
  // Host copies of U and V of tensor j, and their replacement (sizes checked by the caller). A
  // load forgets the selectors' provisional thresholds, as the CPU's DgcStepState is reset.
  std::vector<float> u(size_t j) const;
  std::vector<float> v(size_t j) const;
  void load(size_t j, const std::vector<float>& u, const std::vector<float>& v);

 private:
  Device device_;
  std::vector<int64_t> numels_;
  std::vector<CudaBuffer> u_, v_;
  std::vector<std::unique_ptr<CudaDgcSelector>> selectors_;
  CudaBuffer pairs_;  // aggregate()'s uploaded lists: all indices, then all values
};

}  // namespace terse::exchange

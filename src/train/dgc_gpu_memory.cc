#include "dgc_gpu_memory.h"

#include <cstring>

#include "terse/core/check.h"
#include "terse/kernels/cuda_scatter_add.h"

namespace terse::exchange {

DgcGpuMemory::DgcGpuMemory(Device device, const std::vector<int64_t>& numels)
    : device_(device), numels_(numels) {
  TERSE_CHECK(device.is_cuda(), InvalidArgument, "DgcGpuMemory needs a CUDA device, got ",
              device.str());
  for (int64_t n : numels_) {
    const size_t bytes = static_cast<size_t>(n) * sizeof(float);
    u_.emplace_back(device.index, bytes);
    v_.emplace_back(device.index, bytes);
    selectors_.push_back(std::make_unique<CudaDgcSelector>(device.index));
  }
}

bool DgcGpuMemory::finite(const TensorView& g) const { return cuda_all_finite(g); }

SparseSelection DgcGpuMemory::step(size_t j, float* g, double density, uint64_t seed_step,
                                   const DgcMemoryOptions& memory, const DgcSelectOptions& select) {
  CudaDgcSelector& s = *selectors_[j];
  const CudaSparseSelection sel =
      s.step(static_cast<float*>(u_[j].data()), static_cast<float*>(v_[j].data()), g, numels_[j],
             density, seed_step, memory, select);
  return s.to_host(sel);
}

void DgcGpuMemory::aggregate(const std::vector<SparseSelection>& lists, const TensorView& out,
                             float scale) {
  size_t total = 0;
  for (const SparseSelection& l : lists) total += l.indices.size();
  const size_t bytes = total * (sizeof(int64_t) + sizeof(float));
  if (pairs_.bytes() < bytes) pairs_ = CudaBuffer(device_.index, bytes);
  // Indices first (8-byte aligned), then values; one copy each way per list is small (k pairs).
  std::vector<int64_t> idx;
  std::vector<float> val;
  idx.reserve(total);
  val.reserve(total);
  for (const SparseSelection& l : lists) {
    idx.insert(idx.end(), l.indices.begin(), l.indices.end());
    val.insert(val.end(), l.values.begin(), l.values.end());
  }
  auto* dev_idx = static_cast<int64_t*>(pairs_.data());
  auto* dev_val = reinterpret_cast<float*>(dev_idx + total);
  cuda_copy(dev_idx, idx.data(), total * sizeof(int64_t));
  cuda_copy(dev_val, val.data(), total * sizeof(float));
  std::vector<CudaSparseList> device_lists;
  size_t offset = 0;
  for (const SparseSelection& l : lists) {
    device_lists.push_back(
        CudaSparseList{dev_idx + offset, dev_val + offset, static_cast<int64_t>(l.indices.size())});
    offset += l.indices.size();
  }
  cuda_scatter_add(device_lists.data(), device_lists.size(), static_cast<float*>(out.data),
                   out.numel, /*accumulate=*/false);
  cuda_multiply(out, scale);
}

size_t DgcGpuMemory::state_bytes() const {
  size_t b = 0;
  for (size_t j = 0; j < u_.size(); ++j) b += u_[j].bytes() + v_[j].bytes();
  return b;
}

std::vector<float> DgcGpuMemory::u(size_t j) const {
  std::vector<float> out(static_cast<size_t>(numels_[j]));
  cuda_copy(out.data(), u_[j].data(), u_[j].bytes());
  return out;
}

std::vector<float> DgcGpuMemory::v(size_t j) const {
  std::vector<float> out(static_cast<size_t>(numels_[j]));
  cuda_copy(out.data(), v_[j].data(), v_[j].bytes());
  return out;
}

void DgcGpuMemory::load(size_t j, const std::vector<float>& u, const std::vector<float>& v) {
  cuda_copy(u_[j].data(), u.data(), u_[j].bytes());
  cuda_copy(v_[j].data(), v.data(), v_[j].bytes());
  selectors_[j] = std::make_unique<CudaDgcSelector>(device_.index);
}

}  // namespace terse::exchange

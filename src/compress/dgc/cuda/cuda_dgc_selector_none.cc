// CudaDgcSelector in a build without CUDA: every entry point says so.
#include "terse/compress/dgc/cuda_dgc_selector.h"
#include "terse/core/check.h"

namespace terse {
namespace {

[[noreturn]] void no_cuda() {
  TERSE_THROW(CudaError,
              "CudaDgcSelector: terse was built without CUDA; reconfigure with nvcc on the PATH "
              "(or -DTERSE_CUDA=ON) to select on the GPU");
}

}  // namespace

struct CudaDgcSelector::Impl {};

CudaDgcSelector::CudaDgcSelector(int, double) { no_cuda(); }
CudaDgcSelector::~CudaDgcSelector() = default;
CudaSparseSelection CudaDgcSelector::select(const float*, const DgcSamplePlan&, uint64_t,
                                            const DgcSelectOptions&) {
  no_cuda();
}
CudaSparseSelection CudaDgcSelector::exact_topk(const float*, int64_t, int64_t) { no_cuda(); }
CudaSparseSelection CudaDgcSelector::step(float*, float*, float*, int64_t, double, uint64_t,
                                          const DgcMemoryOptions&, const DgcSelectOptions&) {
  no_cuda();
}
SparseSelection CudaDgcSelector::to_host(const CudaSparseSelection&) const { no_cuda(); }
float CudaDgcSelector::hint() const { return 0.0f; }
CudaDgcScans CudaDgcSelector::scans() const { return {}; }
void CudaDgcSelector::clip(float*, int64_t, double, int) { no_cuda(); }

}  // namespace terse

#pragma once

// Deep Gradient Compression's selection on a CUDA GPU, with the CPU's results bit for bit (Lin et
// al., ICLR 2018; the reference's sampled threshold, adaptation rounds and truncation as in
// sparse_selection.h). See docs/dgc.md, "On the GPU".

#include <cstdint>
#include <memory>

#include "terse/compress/dgc/dgc_memory.h"
#include "terse/compress/dgc/sparse_selection.h"

namespace terse {

// A selection in GPU memory: `count` ascending indices and the values x[index] (V's before
// masking, for step()). The arrays belong to the selector and stay valid until its next call.
struct CudaSparseSelection {
  const int64_t* indices = nullptr;
  const float* values = nullptr;
  int64_t count = 0;
  double threshold = 0.0;  // as SparseSelection::threshold
  int rounds = 0;          // as SparseSelection::rounds
};

// Where the last call's passes went: passes over all n elements, and passes over step()'s
// candidate list instead (DgcSelectProfile's counts); and how the sample's threshold was found:
// by the floor select (step() only: among the sampled values at or above the provisional
// threshold, in one launch) or by the radix select.
struct CudaDgcScans {
  int full_scans = 0;
  int list_scans = 0;
  int floor_selects = 0;
  int radix_selects = 0;
};

// The DGC selection of one tensor on one GPU. Every pointer is in the memory of `device`; the
// work goes to that device's legacy default stream, ordered after what is already enqueued there.
// A call waits for one read-back (a count: the adaptation rounds decide on the host, one more per
// round), so the returned count, threshold and rounds are final; the index and value arrays (and,
// for step(), the masking) are written by kernels still queued on the default stream: use them
// from that stream, or through to_host(). Keeps scratch memory and, for step(), the provisional
// threshold from step to step: use one selector per tensor. Not thread safe.
class CudaDgcSelector {
 public:
  // CudaError when the device does not exist or terse was built without CUDA. list_k as
  // DgcStepState::list_k (in [1, 1e6]; InvalidArgument otherwise).
  explicit CudaDgcSelector(int device, double list_k = 4.0);
  ~CudaDgcSelector();
  CudaDgcSelector(const CudaDgcSelector&) = delete;
  CudaDgcSelector& operator=(const CudaDgcSelector&) = delete;

  // dgc_select_planned(x, plan, seed_step, options): the same indices, values, threshold and
  // rounds (options.threads is not used, but must be >= 1 as on the CPU). Passes: the strided
  // sample, a radix select of its top_k_samples-th largest |x|, a count per threshold tried and one
  // compaction. InvalidArgument as dgc_select_planned; NumericalError when the sample holds a NaN.
  CudaSparseSelection select(const float* x, const DgcSamplePlan& plan, uint64_t seed_step,
                             const DgcSelectOptions& options = {});

  // exact_topk_select(x, n, k): the k largest |x|, ties at the k-th broken by lower index.
  // InvalidArgument for k outside [0, n]; NumericalError when x holds a NaN.
  CudaSparseSelection exact_topk(const float* x, int64_t n, int64_t k);

  // DgcMemory::step(u, v, g, n, density, seed_step, options, select_options, state) with this
  // selector as the state: clip (if on), U = mU + g and V += U (Nesterov as the CPU) in one pass
  // that also lists every |V| >= the provisional threshold and writes the sample, the sample's
  // threshold (found among the sampled values at or above the provisional threshold when there
  // are enough and not too many of them, else by the radix select), the selection (over that list
  // when its threshold allows, else over V), then V (and U with momentum masking) zeroed at the
  // selected indices. Same bits as the CPU, except the clipping norm, which is summed in another
  // order (so a clipped g may differ in the last bit of its scale). Errors as DgcMemory::step.
  CudaSparseSelection step(float* u, float* v, float* g, int64_t n, double density,
                           uint64_t seed_step, const DgcMemoryOptions& options,
                           const DgcSelectOptions& select_options = {});

  // The selection copied to the host (waits for it).
  SparseSelection to_host(const CudaSparseSelection& s) const;

  // step()'s provisional threshold for the next step (DgcStepState::hint); 0 before the first.
  float hint() const;
  // The last call's passes.
  CudaDgcScans scans() const;

 private:
  // DgcMemory::clip on the GPU (the norm summed in double by a tree reduction).
  void clip(float* g, int64_t n, double max_norm, int num_workers);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace terse

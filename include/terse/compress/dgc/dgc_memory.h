#pragma once

// DGC momentum correction and momentum factor masking over flat fp32 buffers (the reference's
// DGCSGDMemory.compensate / update), with optional local gradient clipping. See docs/dgc.md.

#include <cstdint>
#include <vector>

#include "terse/compress/dgc/sparse_selection.h"

namespace terse {

struct DgcMemoryOptions {
  double momentum = 0.9;         // m: the optimizer's momentum (the reference shares it)
  bool nesterov = false;         // U = m(U + g); V += U + g
  bool momentum_masking = true;  // U[selected] = 0 as well as V[selected] = 0
  // Local clipping of g before compensation (off when <= 0): g scaled so that its L2 norm is at
  // most clip_max_norm / sqrt(num_workers), the paper's N^(-1/2) rule.
  double clip_max_norm = 0.0;
  int num_workers = 1;
};

// Where one DgcMemory::step's time went (benchmarks fill it; nullptr costs nothing). Seconds.
struct DgcStepProfile {
  double clip_s = 0.0;
  double compensate_s = 0.0;  // U = mU + g, V += U
  DgcSelectProfile select;    // sample, threshold, scans (dgc_select)
  double mask_s = 0.0;
};

// What DgcMemory::step keeps of a tensor from one step to the next (DgcExchange holds one per
// compressed tensor). With it, step() takes the selection's sample while it compensates, and,
// from the second step on, lists every index with |V| >= the provisional threshold (where the
// last step's sample put about list_k * k elements): every later pass at a threshold at or above
// it filters that list instead of reading V. The result is the same bit for bit; a pass below
// the provisional threshold, or a list over n/16 + 4k entries, reads V as without a state.
struct DgcStepState {
  double list_k = 4.0;            // >= 1: covers the sample's noise and a moving threshold
  float hint = 0.0f;              // the provisional threshold; 0: none (no list)
  bool list_overflowed = false;   // out: the last step's list went over its cap
  DgcPrescan prescan;             // reused from step to step (its capacity stays)
  std::vector<DgcPrescan> parts;  // the same, for the threads after the first
};

struct DgcMemory {
  // Momentum correction, in place, one pass: U = m*U + g; V += U (Nesterov: U = m*(U + g);
  // V += U + g). g is read only.
  static void compensate(float* u, float* v, const float* g, int64_t n,
                         const DgcMemoryOptions& options);

  // Momentum factor masking: V[i] = 0 (and U[i] = 0 when momentum_masking) for the selected i.
  // Throws InvalidArgument when an index is outside [0, n).
  static void mask(float* u, float* v, int64_t n, const SparseSelection& selection,
                   const DgcMemoryOptions& options);

  // Scales g in place so ||g||_2 <= max_norm / sqrt(num_workers) (torch's clip_grad_norm_ rule:
  // coefficient max/(norm + 1e-6), applied only when below 1). Returns the norm before clipping.
  // Throws NumericalError when the norm is not finite.
  static double clip(float* g, int64_t n, double max_norm, int num_workers);

  // The whole per-step DGC compression of one tensor: clip (if on), compensate, select from V
  // with dgc_select, mask. select_options.threads splits the compensation and the selection
  // pass (same result for any count). Returns the selection (values are V's before masking).
  // A state (kept by the caller for this tensor) fuses the selection's first passes into the
  // compensation; the result does not depend on it.
  static SparseSelection step(float* u, float* v, float* g, int64_t n, double density,
                              uint64_t seed_step, const DgcMemoryOptions& options,
                              const DgcSelectOptions& select_options = {},
                              DgcStepState* state = nullptr, DgcStepProfile* profile = nullptr);
};

// Momentum applied to densely exchanged tensors after the all-reduce (the reference's
// compensate(accumulate=False)): U = m*U + g, out = U (Nesterov: U = m*(U + g), out = U + g).
void dgc_dense_momentum(float* u, const float* g, float* out, int64_t n,
                        const DgcMemoryOptions& options);

// Dense exchange policy: 1-D tensors (biases, norms) and tensors with fewer than min_sparse_numel
// elements go dense, as in the reference (which sparsifies only dim() > 1).
inline constexpr int64_t kDgcMinSparseNumel = 1024;
bool dgc_goes_dense(int dim, int64_t numel, int64_t min_sparse_numel = kDgcMinSparseNumel);

}  // namespace terse

#pragma once

// Deep Gradient Compression top-k selection (Lin et al., ICLR 2018), as the reference
// implementation (synxlin/deep-gradient-compression, dgc/compression.py) does it: estimate the
// threshold from a strided sample of |x|, select |x| >= threshold, adapt the threshold at most
// max_adaptation_iters times, and an exact top-k for comparison. See docs/dgc.md.

#include <cstdint>
#include <vector>

namespace terse {

// Indices (ascending) and the values x[index] of the selected elements.
struct SparseSelection {
  std::vector<int64_t> indices;
  std::vector<float> values;
  double threshold = 0.0;  // the final |x| threshold: every selected |x| >= threshold
  int rounds = 0;          // threshold adaptations performed (0 when the first estimate held)
};

// Per-tensor constants of the reference's DGCCompressor.initialize for n elements at density.
struct DgcSamplePlan {
  int64_t numel = 0;
  int64_t stride = 1;         // sample every stride-th element
  int64_t num_samples = 0;    // n / stride (n when stride == 1)
  int64_t top_k_samples = 0;  // ceil(num_samples * density)
  int64_t num_selects = 0;    // ceil(n * density): the target count k
};

struct DgcSelectOptions {
  double sample_ratio = 0.01;  // fraction of elements sampled; the reference clamps to [0.01, 1]
  double upper_bound = 1.3;    // adapt when count > upper_bound * k
  double lower_bound = 0.8;    // adapt when count < lower_bound * k
  int max_adaptation_iters = 10;
  bool resample = true;  // count > upper_bound*k: exact top-k over the candidates
  // Threads for the selection pass (and DgcMemory::step's momentum correction); the result is
  // the same for any count.
  int threads = 1;
  uint64_t seed = 0;  // with seed_step, picks the random start of the strided sample
};

// Elements i with |x[i]| at or above a threshold: ascending indices and their |x[i]|.
struct DgcCandidates {
  std::vector<int64_t> idx;
  std::vector<float> mag;
};

// What a pass that wrote x gathered on the way for dgc_select (DgcMemory::step fuses it into
// the momentum correction): the strided sample, and optionally every element at or above
// list_threshold, so no later pass at or above it need read x again.
struct DgcPrescan {
  std::vector<float> sample;  // |x[start + j * stride]| for j = 0, 1, ... (dgc_sample_start)
  int64_t nan_at = -1;        // the first sampled index whose |x| is NaN; -1 when none
  bool has_list = false;      // list holds every i with |x[i]| >= list_threshold
  float list_threshold = 0.0f;
  DgcCandidates list;
  // In: a sample rank r >= 1 (0: none). Out: the r-th largest sampled |x| (0 when the sample
  // is shorter), where about r / top_k_samples * k elements of x start: DgcMemory::step's
  // list_threshold for the next step.
  int64_t next_rank = 0;
  float next_threshold = 0.0f;
};

// Where one selection's time went (benchmarks fill it; nullptr costs nothing). Seconds.
struct DgcSelectProfile {
  double threshold_s = 0.0;  // the strided sample of |x| and its nth_element
  double scan_s = 0.0;       // every pass collecting |x| >= threshold, adaptation rounds included
  int full_scans = 0;        // passes over all n elements
  int list_scans = 0;        // passes over a candidate list instead (DgcMemory::step's fusion)
};

// The reference's sampling plan. Throws InvalidArgument for n < 1, density outside (0, 1] or a
// sample_ratio outside (0, 1].
DgcSamplePlan dgc_sample_plan(int64_t n, double density, double sample_ratio = 0.01);

// ceil(n * density), the reference's num_selects (at least 1 for n >= 1).
int64_t dgc_num_selects(int64_t n, double density);

// Sampled-threshold selection of about density*n largest |x|. Deterministic given its inputs:
// the sample start is drawn from Philox(options.seed) at counter seed_step. The result holds at
// most num_selects elements; when more than that pass the final threshold and fewer than
// upper_bound*k, the first num_selects in index order are kept (the reference's truncation).
// Throws NumericalError when the sample holds a NaN.
SparseSelection dgc_select(const float* x, int64_t n, double density, uint64_t seed_step,
                           const DgcSelectOptions& options = {});

// Same, with a precomputed plan (the reference recomputes it only when the density changes).
SparseSelection dgc_select_planned(const float* x, const DgcSamplePlan& plan, uint64_t seed_step,
                                   const DgcSelectOptions& options = {},
                                   DgcSelectProfile* profile = nullptr);

// The index of the strided sample's first element at seed_step (0 when plan.stride == 1).
int64_t dgc_sample_start(const DgcSamplePlan& plan, uint64_t seed_step,
                         const DgcSelectOptions& options = {});

// dgc_select_planned of x from a prescan of it at seed_step, the same result bit for bit: a pass at
// a threshold at or above pre.list_threshold filters pre.list instead of reading x, and the sample
// threshold comes from the sampled values at or above it when enough are. Reorders pre.sample.
// Throws NumericalError when pre.nan_at >= 0, InvalidArgument when pre.sample does not have the
// plan's size.
SparseSelection dgc_select_prescanned(const float* x, const DgcSamplePlan& plan, uint64_t seed_step,
                                      DgcPrescan& pre, const DgcSelectOptions& options = {},
                                      DgcSelectProfile* profile = nullptr);

// Exact top-k of |x| by nth_element: the k largest |x|, ties at the k-th value broken by lower
// index. Throws InvalidArgument for k outside [0, n], NumericalError when x holds a NaN.
SparseSelection exact_topk_select(const float* x, int64_t n, int64_t k);

}  // namespace terse

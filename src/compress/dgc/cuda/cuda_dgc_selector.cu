// CudaDgcSelector (terse/compress/dgc/cuda_dgc_selector.h): the CPU's select_sampled,
// exact_topk_select and DgcMemory::step on the GPU. The host keeps the decisions (threshold
// adaptation from a count read back, list or full pass), so they are the CPU's line for line;
// the device does the passes. Built with -fmad=false: the momentum correction's bits are the CPU's.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_reduce.cuh>
#include <cuda/std/functional>

#include "compensate_list.cuh"
#include "select_kernels.cuh"
#include "terse/compress/dgc/cuda_dgc_selector.h"
#include "terse/core/check.h"

namespace terse {
namespace {

using dgc_cuda::Ctl;
using dgc_cuda::kThreads;
using dgc_cuda::kTile;
using dgc_cuda::Mode;

void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    TERSE_THROW(CudaError, "DGC on the GPU: ", what, " failed: ", cudaGetErrorName(err), " (",
                cudaGetErrorString(err), ")");
  }
}

void check_launch(const char* what) { check_cuda(cudaGetLastError(), what); }

// Device memory that only grows (scratch reused from call to call).
class DeviceBytes {
 public:
  DeviceBytes() = default;
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
  ~DeviceBytes() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  void* reserve(size_t bytes) {
    if (bytes > bytes_) {
      if (ptr_ != nullptr) check_cuda(cudaFree(ptr_), "cudaFree of scratch");
      ptr_ = nullptr;
      bytes_ = 0;
      check_cuda(cudaMalloc(&ptr_, bytes), "cudaMalloc of scratch");
      bytes_ = bytes;
    }
    return ptr_;
  }
  template <typename T>
  T* as(int64_t count) {
    return static_cast<T*>(reserve(sizeof(T) * static_cast<size_t>(std::max<int64_t>(count, 1))));
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

int blocks_for(int64_t n, int64_t per_block, int64_t most = 4096) {
  return static_cast<int>(std::clamp<int64_t>((n + per_block - 1) / per_block, 1, most));
}

int64_t tiles_of(int64_t m) { return std::max<int64_t>(1, (m + kTile - 1) / kTile); }

struct SquareToDouble {
  __device__ double operator()(float x) const {
    return static_cast<double>(x) * static_cast<double>(x);
  }
};

// dgc_select_planned's argument checks (sparse_selection.cc's check_select).
void check_select_args(const float* x, const DgcSamplePlan& plan, const DgcSelectOptions& options) {
  const int64_t n = plan.numel;
  TERSE_CHECK(n >= 1 && plan.stride >= 1 && plan.num_selects >= 1 && plan.top_k_samples >= 1,
              InvalidArgument, "DGC sample plan is not valid (numel ", n, ", stride ", plan.stride,
              ", num_selects ", plan.num_selects, "); build it with dgc_sample_plan");
  TERSE_CHECK(x != nullptr, InvalidArgument, "CudaDgcSelector got a null pointer for ", n,
              " elements; pass the tensor's data in GPU memory");
  TERSE_CHECK(options.upper_bound >= 1.0 && options.lower_bound > 0.0 &&
                  options.lower_bound <= 1.0 && options.max_adaptation_iters >= 0,
              InvalidArgument,
              "DGC options must satisfy upper >= 1, 0 < lower <= 1, iters >= 0; got upper ",
              options.upper_bound, ", lower ", options.lower_bound, ", iters ",
              options.max_adaptation_iters, "; the reference uses 1.3, 0.8, 10");
}

[[noreturn]] void throw_nan(unsigned long long i, int64_t n, const char* who) {
  TERSE_THROW(NumericalError, who, " found NaN at index ", i, " of ", n,
              "; the gradient or accumulated velocity diverged: lower the learning rate or "
              "enable clipping");
}

}  // namespace

struct CudaDgcSelector::Impl {
  int device = 0;
  double list_k = 4.0;
  float hint = 0.0f;
  CudaDgcScans scans;
  Ctl* ctl = nullptr;
  unsigned int* hist = nullptr;
  DeviceBytes sample, tile_c1, tile_c2, tile_off, tile_c2_before, list_idx, list_mag, cand_idx,
      cand_val, sorted_idx, sorted_val, sel_idx, sel_val, sort_tmp, norm;

  // Makes the selector's device current for the call and restores the caller's after it.
  struct DeviceScope {
    int previous = 0;
    explicit DeviceScope(int d) {
      check_cuda(cudaGetDevice(&previous), "cudaGetDevice");
      check_cuda(cudaSetDevice(d), "cudaSetDevice");
    }
    ~DeviceScope() { cudaSetDevice(previous); }
  };

  Ctl read_ctl() const {
    Ctl h{};
    check_cuda(cudaMemcpy(&h, ctl, sizeof h, cudaMemcpyDeviceToHost), "reading back a count");
    return h;
  }

  // The k-th largest |a[0, m)| into result[slot] (and thr for slot 0), on the device.
  void radix_select(const float* a, int64_t m, int64_t k, int slot, bool check_nan) {
    dgc_cuda::radix_init_kernel<<<1, 1>>>(ctl, k, check_nan ? 1 : 0);
    const int grid = blocks_for(m, int64_t{kThreads} * 16, 1024);
    const int shifts[3] = {21, 10, 0};
    const uint32_t masks[3] = {0x7ffu, 0x7ffu, 0x3ffu};
    for (int p = 0; p < 3; ++p) {
      dgc_cuda::radix_pass_kernel<<<grid, kThreads>>>(a, m, shifts[p], masks[p], ctl, hist, slot,
                                                      p == 2 ? 1 : 0, check_nan && p == 0);
    }
    check_launch("the radix select");
  }

  // Counts |a| >= thr (kGe) over a[0, m) (m_dev: the list's length on the device) into
  // ctl->count; thr_value < 0 keeps ctl->thr.
  template <Mode kMode>
  void count(const float* a, int64_t m, const unsigned long long* m_dev, float thr_value,
             int slot) {
    dgc_cuda::set_threshold_kernel<<<1, 1>>>(ctl, thr_value, thr_value >= 0.0f ? 1 : 0);
    const int64_t tiles = tiles_of(m);
    dgc_cuda::tile_count_kernel<kMode><<<static_cast<unsigned>(tiles), kThreads>>>(
        a, m, m_dev, ctl, slot, tile_c1.as<long long>(tiles), tile_c2.as<long long>(tiles));
    check_launch("a count pass");
  }

  // Pass 2 after count<kMode>: the selected elements in order, the first `limit`, into
  // (out_idx, out_val). k: the tie budget's rank (kTie).
  template <Mode kMode>
  void compact(const float* a, int64_t m, const unsigned long long* m_dev, const int64_t* idx_map,
               const float* x, int slot, int64_t k, int64_t limit, int64_t* out_idx,
               float* out_val) {
    const int64_t tiles = tiles_of(m);
    const int tie = kMode == Mode::kTie ? 1 : 0;
    dgc_cuda::tile_offsets_kernel<<<1, 1024>>>(
        tile_c1.as<long long>(tiles), tile_c2.as<long long>(tiles), tiles, k, tie, ctl,
        tile_off.as<long long>(tiles), tile_c2_before.as<long long>(tiles));
    dgc_cuda::tile_write_kernel<kMode><<<static_cast<unsigned>(tiles), kThreads>>>(
        a, m, m_dev, idx_map, x, ctl, slot, k, tie, tile_off.as<long long>(tiles),
        tile_c2_before.as<long long>(tiles), limit, out_idx, out_val);
    check_launch("a compaction pass");
  }

  // Exact top-k of the c candidates (ascending indices cidx, values cval): the k largest |value|,
  // ties at the k-th by lower index, into sel_*; returns k.
  void topk_of(const int64_t* cidx, const float* cval, int64_t c, int64_t k, const float* x) {
    radix_select(cval, c, k, 1, false);
    count<Mode::kTie>(cval, c, nullptr, -1.0f, 1);
    compact<Mode::kTie>(cval, c, nullptr, cidx, x, 1, k, k, sel_idx.as<int64_t>(k),
                        sel_val.as<float>(k));
  }

  // Sorts the c candidates in cand_* (list order) by index, into sorted_*.
  void sort_by_index(int64_t c, int64_t n) {
    int end_bit = 1;
    while (end_bit < 63 && (int64_t{1} << end_bit) < n) ++end_bit;
    size_t bytes = 0;
    int64_t* ki = cand_idx.as<int64_t>(c);
    float* kv = cand_val.as<float>(c);
    int64_t* oi = sorted_idx.as<int64_t>(c);
    float* ov = sorted_val.as<float>(c);
    check_cuda(cub::DeviceRadixSort::SortPairs(nullptr, bytes, ki, oi, kv, ov, c, 0, end_bit),
               "sizing the candidate sort");
    void* tmp = sort_tmp.reserve(std::max<size_t>(bytes, 1));
    check_cuda(cub::DeviceRadixSort::SortPairs(tmp, bytes, ki, oi, kv, ov, c, 0, end_bit),
               "sorting the candidates");
  }

  // select_sampled's decisions with the sample (ms values) already on the device; list_ok: the
  // candidate list (list_*, its length in ctl->list_count) holds every |x| >= hint.
  CudaSparseSelection select_sampled(const float* x, const DgcSamplePlan& plan, int64_t ms,
                                     const DgcSelectOptions& options, bool try_list,
                                     float list_hint, int64_t list_cap, int64_t next_rank);
};

CudaDgcSelector::CudaDgcSelector(int device, double list_k) : impl_(std::make_unique<Impl>()) {
  TERSE_CHECK(list_k >= 1.0 && list_k <= 1e6, InvalidArgument,
              "CudaDgcSelector list_k must be in [1, 1e6], got ", list_k,
              "; the default 4 lists about 4k elements");
  int count = 0;
  check_cuda(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  TERSE_CHECK(device >= 0 && device < count, InvalidArgument, "CudaDgcSelector: device ", device,
              " does not exist (", count, " CUDA devices); pass a device index in [0, ", count,
              ")");
  impl_->device = device;
  impl_->list_k = list_k;
  Impl::DeviceScope scope(device);
  check_cuda(cudaMalloc(&impl_->ctl, sizeof(Ctl)), "cudaMalloc of the control block");
  check_cuda(cudaMemset(impl_->ctl, 0, sizeof(Ctl)), "cudaMemset of the control block");
  check_cuda(cudaMalloc(&impl_->hist, sizeof(unsigned int) * dgc_cuda::kBins),
             "cudaMalloc of the histogram");
  check_cuda(cudaMemset(impl_->hist, 0, sizeof(unsigned int) * dgc_cuda::kBins),
             "cudaMemset of the histogram");
}

CudaDgcSelector::~CudaDgcSelector() {
  if (impl_ == nullptr) return;
  cudaFree(impl_->ctl);
  cudaFree(impl_->hist);
}

float CudaDgcSelector::hint() const { return impl_->hint; }
CudaDgcScans CudaDgcSelector::scans() const { return impl_->scans; }

CudaSparseSelection CudaDgcSelector::Impl::select_sampled(const float* x, const DgcSamplePlan& plan,
                                                          int64_t ms,
                                                          const DgcSelectOptions& options,
                                                          bool try_list, float list_hint,
                                                          int64_t list_cap, int64_t next_rank) {
  const int64_t n = plan.numel;
  const int64_t k = plan.num_selects;
  const float* sample_ptr = sample.as<float>(ms);
  const int64_t ks = std::min<int64_t>(plan.top_k_samples, ms);
  const unsigned long long* list_len = &ctl->list_count;
  const float* lmag = list_mag.as<float>(list_cap);
  // The sample's ks-th largest, then (with a list) the list's count at it and the sampled values
  // at or above the list's threshold, all read back in one copy.
  radix_select(sample_ptr, ms, ks, 0, false);
  if (try_list) {
    count<Mode::kGe>(lmag, list_cap, list_len, -1.0f, 0);
    dgc_cuda::count_ge_kernel<<<blocks_for(ms, kThreads * 16, 256), kThreads>>>(sample_ptr, ms,
                                                                                list_hint, ctl);
    check_launch("counting the sample above the list's threshold");
  }
  const Ctl h = read_ctl();
  if (h.nan_first != dgc_cuda::kNoNan) throw_nan(h.nan_first, n, "DGC selection");
  const bool use_list = try_list && h.list_count <= static_cast<unsigned long long>(list_cap);
  float thr = h.thr;
  auto on_list = [&](float t) { return use_list && t >= list_hint; };
  // One count pass at t (its tile counts are what the compaction below reads).
  auto scan = [&](float t) {
    if (on_list(t)) {
      count<Mode::kGe>(lmag, list_cap, list_len, t, 0);
      ++scans.list_scans;
    } else {
      count<Mode::kGe>(x, n, nullptr, t, 0);
      ++scans.full_scans;
    }
    return static_cast<int64_t>(read_ctl().count);
  };
  int64_t cnt = 0;
  if (on_list(thr)) {
    cnt = static_cast<int64_t>(h.count);
    ++scans.list_scans;
  } else {
    cnt = scan(thr);
  }
  // The next step's provisional threshold (the CPU's next_threshold); touches only result[1].
  if (next_rank > 0) {
    const auto high = static_cast<int64_t>(h.aux);
    const int64_t r = next_rank;
    if (use_list && 2 * high >= r && high <= 2 * r) {
      hint = list_hint;
    } else if (r > ms) {
      hint = 0.0f;
    } else {
      radix_select(sample_ptr, ms, r, 1, false);
      const uint32_t bits = read_ctl().result[1];
      std::memcpy(&hint, &bits, sizeof hint);
    }
  }
  int rounds = 0;
  bool resampled = false;
  // Adapt only when the threshold came from a true sample (the reference: n > num_samples).
  if (n > plan.num_samples) {
    for (int it = 0; it < options.max_adaptation_iters; ++it) {
      const auto c = static_cast<double>(cnt);
      if (c > static_cast<double>(k)) {
        if (c > options.upper_bound * static_cast<double>(k)) {
          if (options.resample) {
            resampled = true;
            break;
          }
          thr = static_cast<float>(static_cast<double>(thr) * options.upper_bound);
        } else {
          break;
        }
      } else if (c < options.lower_bound * static_cast<double>(k)) {
        thr = static_cast<float>(static_cast<double>(thr) * options.lower_bound);
      } else {
        break;
      }
      ++rounds;
      cnt = scan(thr);
    }
  }
  CudaSparseSelection s;
  s.threshold = thr;
  s.rounds = rounds;
  if (cnt == 0) return s;
  // The candidates at thr in index order (the last count pass was at thr, on the same source),
  // then the reference's exact top-k over them, or its truncation to the first k.
  const int64_t* ci = nullptr;
  const float* cv = nullptr;
  if (on_list(thr)) {
    compact<Mode::kGe>(lmag, list_cap, list_len, list_idx.as<int64_t>(list_cap), x, 0, 0, cnt,
                       cand_idx.as<int64_t>(cnt), cand_val.as<float>(cnt));
    sort_by_index(cnt, n);
    ci = sorted_idx.as<int64_t>(cnt);
    cv = sorted_val.as<float>(cnt);
  } else if (resampled) {
    compact<Mode::kGe>(x, n, nullptr, nullptr, x, 0, 0, cnt, cand_idx.as<int64_t>(cnt),
                       cand_val.as<float>(cnt));
    ci = cand_idx.as<int64_t>(cnt);
    cv = cand_val.as<float>(cnt);
  } else {
    const int64_t keep = std::min(cnt, k);
    compact<Mode::kGe>(x, n, nullptr, nullptr, x, 0, 0, keep, cand_idx.as<int64_t>(keep),
                       cand_val.as<float>(keep));
    ci = cand_idx.as<int64_t>(keep);
    cv = cand_val.as<float>(keep);
  }
  if (resampled) {
    topk_of(ci, cv, cnt, k, x);
    s.count = k;
    s.indices = sel_idx.as<int64_t>(k);
    s.values = sel_val.as<float>(k);
  } else {
    s.count = std::min(cnt, k);
    s.indices = ci;
    s.values = cv;
  }
  check_cuda(cudaDeviceSynchronize(), "the selection");
  return s;
}

CudaSparseSelection CudaDgcSelector::select(const float* x, const DgcSamplePlan& plan,
                                            uint64_t seed_step, const DgcSelectOptions& options) {
  check_select_args(x, plan, options);
  Impl::DeviceScope scope(impl_->device);
  impl_->scans = {};
  const int64_t start = dgc_sample_start(plan, seed_step, options);
  const int64_t ms = (plan.numel - start + plan.stride - 1) / plan.stride;
  dgc_cuda::reset_step_kernel<<<1, 1>>>(impl_->ctl);
  dgc_cuda::sample_kernel<<<blocks_for(ms, kThreads, int64_t{1} << 30), kThreads>>>(
      x, start, plan.stride, ms, impl_->sample.as<float>(ms), impl_->ctl);
  check_launch("the sample");
  return impl_->select_sampled(x, plan, ms, options, false, 0.0f, 0, 0);
}

CudaSparseSelection CudaDgcSelector::exact_topk(const float* x, int64_t n, int64_t k) {
  TERSE_CHECK(n >= 0 && k >= 0 && k <= n, InvalidArgument, "exact top-k needs 0 <= k <= n, got k ",
              k, " for n ", n, "; pass k = ceil(density * n)");
  CudaSparseSelection s;
  impl_->scans = {};
  if (k == 0) return s;
  TERSE_CHECK(x != nullptr, InvalidArgument, "CudaDgcSelector::exact_topk got a null pointer for ",
              n, " elements; pass the tensor's data");
  Impl::DeviceScope scope(impl_->device);
  Impl& m = *impl_;
  m.radix_select(x, n, k, 1, true);
  m.count<Mode::kTie>(x, n, nullptr, -1.0f, 1);
  m.compact<Mode::kTie>(x, n, nullptr, nullptr, x, 1, k, k, m.sel_idx.as<int64_t>(k),
                        m.sel_val.as<float>(k));
  m.scans.full_scans = 5;
  const Ctl h = m.read_ctl();
  if (h.nan_first != dgc_cuda::kNoNan) throw_nan(h.nan_first, n, "exact top-k");
  float t = 0.0f;
  std::memcpy(&t, &h.result[1], sizeof t);
  s.count = k;
  s.indices = m.sel_idx.as<int64_t>(k);
  s.values = m.sel_val.as<float>(k);
  s.threshold = t;
  return s;
}

CudaSparseSelection CudaDgcSelector::step(float* u, float* v, float* g, int64_t n, double density,
                                          uint64_t seed_step, const DgcMemoryOptions& options,
                                          const DgcSelectOptions& select_options) {
  TERSE_CHECK(options.momentum >= 0.0 && options.momentum < 1.0, InvalidArgument,
              "DGC momentum must be in [0, 1), got ", options.momentum,
              "; pass the optimizer's momentum (e.g. 0.9)");
  TERSE_CHECK(options.num_workers >= 1, InvalidArgument, "DGC num_workers must be >= 1, got ",
              options.num_workers, "; pass the communicator's size");
  TERSE_CHECK(n >= 1 && u != nullptr && v != nullptr && g != nullptr, InvalidArgument,
              "CudaDgcSelector::step needs n >= 1 and U, V and g in GPU memory, got n ", n,
              "; send empty tensors dense or skip them");
  const DgcSamplePlan plan = dgc_sample_plan(n, density, select_options.sample_ratio);
  check_select_args(v, plan, select_options);
  Impl::DeviceScope scope(impl_->device);
  Impl& m = *impl_;
  m.scans = {};
  if (options.clip_max_norm > 0.0) clip(g, n, options.clip_max_norm, options.num_workers);
  const float hint = m.hint > 0.0f && std::isfinite(m.hint) ? m.hint : 0.0f;
  const int64_t cap = n / 16 + 4 * plan.num_selects;
  dgc_cuda::reset_step_kernel<<<1, 1>>>(m.ctl);
  const dgc_cuda::ListOut out{m.list_idx.as<int64_t>(cap), m.list_mag.as<float>(cap),
                              static_cast<unsigned long long>(cap)};
  const auto mom = static_cast<float>(options.momentum);
  const bool vec = (reinterpret_cast<uintptr_t>(u) | reinterpret_cast<uintptr_t>(v) |
                    reinterpret_cast<uintptr_t>(g)) %
                       16 ==
                   0;
  const int grid = blocks_for((n + 3) / 4, kThreads, 132 * 16);
  if (options.nesterov) {
    if (vec) {
      dgc_cuda::compensate_list_kernel<true, true>
          <<<grid, kThreads>>>(u, v, g, n, mom, hint, m.ctl, out);
    } else {
      dgc_cuda::compensate_list_kernel<true, false>
          <<<grid, kThreads>>>(u, v, g, n, mom, hint, m.ctl, out);
    }
  } else if (vec) {
    dgc_cuda::compensate_list_kernel<false, true>
        <<<grid, kThreads>>>(u, v, g, n, mom, hint, m.ctl, out);
  } else {
    dgc_cuda::compensate_list_kernel<false, false>
        <<<grid, kThreads>>>(u, v, g, n, mom, hint, m.ctl, out);
  }
  check_launch("the momentum correction");
  const int64_t start = dgc_sample_start(plan, seed_step, select_options);
  const int64_t ms = (n - start + plan.stride - 1) / plan.stride;
  dgc_cuda::sample_kernel<<<blocks_for(ms, kThreads, int64_t{1} << 30), kThreads>>>(
      v, start, plan.stride, ms, m.sample.as<float>(ms), m.ctl);
  check_launch("the sample");
  const auto next_rank =
      static_cast<int64_t>(std::ceil(m.list_k * static_cast<double>(plan.top_k_samples)));
  m.hint = 0.0f;  // stays 0 when the selection throws, as the CPU's state
  const CudaSparseSelection s =
      m.select_sampled(v, plan, ms, select_options, hint > 0.0f, hint, cap, next_rank);
  if (s.count > 0) {
    dgc_cuda::mask_kernel<<<blocks_for(s.count, kThreads, int64_t{1} << 30), kThreads>>>(
        u, v, s.indices, s.count, options.momentum_masking ? 1 : 0);
    check_launch("the momentum factor masking");
  }
  return s;
}

void CudaDgcSelector::clip(float* g, int64_t n, double max_norm, int num_workers) {
  TERSE_CHECK(max_norm > 0.0, InvalidArgument, "DGC clip max_norm must be > 0, got ", max_norm,
              "; pass a positive norm or leave clipping off");
  Impl& m = *impl_;
  double* sum = m.norm.as<double>(1);
  size_t bytes = 0;
  check_cuda(cub::DeviceReduce::TransformReduce(nullptr, bytes, g, sum, n, cuda::std::plus<>{},
                                                SquareToDouble{}, 0.0),
             "sizing the clipping norm");
  void* tmp = m.sort_tmp.reserve(std::max<size_t>(bytes, 1));
  check_cuda(cub::DeviceReduce::TransformReduce(tmp, bytes, g, sum, n, cuda::std::plus<>{},
                                                SquareToDouble{}, 0.0),
             "the clipping norm");
  double sq = 0.0;
  check_cuda(cudaMemcpy(&sq, sum, sizeof sq, cudaMemcpyDeviceToHost), "reading the norm");
  const double norm = std::sqrt(sq);
  TERSE_CHECK(std::isfinite(norm), NumericalError, "DGC local clipping saw gradient norm ", norm,
              " over ", n, " elements; the gradient diverged: lower the learning rate");
  const double coef = max_norm / std::sqrt(static_cast<double>(num_workers)) / (norm + 1e-6);
  if (coef < 1.0) {
    dgc_cuda::scale_kernel<<<blocks_for(n, kThreads * 8, 4096), kThreads>>>(
        g, n, static_cast<float>(coef));
    check_launch("the clipping scale");
  }
}

SparseSelection CudaDgcSelector::to_host(const CudaSparseSelection& s) const {
  SparseSelection h;
  h.threshold = s.threshold;
  h.rounds = s.rounds;
  h.indices.resize(static_cast<size_t>(s.count));
  h.values.resize(static_cast<size_t>(s.count));
  if (s.count > 0) {
    Impl::DeviceScope scope(impl_->device);
    check_cuda(cudaMemcpy(h.indices.data(), s.indices, sizeof(int64_t) * h.indices.size(),
                          cudaMemcpyDeviceToHost),
               "copying the indices");
    check_cuda(cudaMemcpy(h.values.data(), s.values, sizeof(float) * h.values.size(),
                          cudaMemcpyDeviceToHost),
               "copying the values");
  }
  return h;
}

}  // namespace terse

// CudaDgcSelector (terse/compress/dgc/cuda_dgc_selector.h): the CPU's select_sampled,
// exact_topk_select and DgcMemory::step on the GPU. The host keeps the decisions (threshold
// adaptation from a count read back, list or full pass), so they are the CPU's line for line;
// the device does the passes. Built with -fmad=false: the momentum correction's bits are the CPU's.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <cub/device/device_reduce.cuh>
#include <cub/device/device_scan.cuh>
#include <cuda/std/functional>

#include "../adapt.h"
#include "../memory_rules.h"
#include "floor_select.cuh"
#include "radix_select.cuh"
#include "select_kernels.cuh"
#include "stash_kernels.cuh"
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

[[noreturn]] void throw_nan(unsigned long long i, int64_t n, const char* who) {
  TERSE_THROW(NumericalError, who, " found NaN at index ", i, " of ", n,
              "; the gradient or accumulated velocity diverged: lower the learning rate or "
              "enable clipping");
}

}  // namespace

struct CudaDgcSelector::Impl {
  int device = 0;
  double list_k = 4.0;
  CudaDgcScans scans;
  Ctl* ctl = nullptr;
  dgc_cuda::RadixScratch* radix = nullptr;
  int radix_blocks = 1;        // the most blocks of radix_select_kernel resident at once
  unsigned int radix_tag = 0;  // the last launch's tag (the scratch's `published` starts at 0)
  DeviceBytes sample, tile_c1, tile_c2, tile_off, tile_c2_before, tile_hits, stash, cand_idx,
      cand_val, sel_idx, sel_val, scratch, norm, stash_val;
  int slots = 256;    // stash slots per tile of this call
  float hint = 0.0f;  // ctl->hint, as the host last set it (step()'s provisional threshold)

  // Makes the selector's device current for the call and restores the caller's after it.
  struct DeviceScope {
    int previous = 0;
    explicit DeviceScope(int d) {
      check_cuda(cudaGetDevice(&previous), "cudaGetDevice");
      check_cuda(cudaSetDevice(d), "cudaSetDevice");
    }
    ~DeviceScope() { cudaSetDevice(previous); }
  };

  Ctl* host_ctl = nullptr;  // pinned: the read-back is one short DMA, not a staged copy

  Ctl read_ctl() const {
    check_cuda(
        cudaMemcpyAsync(host_ctl, ctl, sizeof(Ctl), cudaMemcpyDeviceToHost, cudaStreamLegacy),
        "reading back a count");
    check_cuda(cudaStreamSynchronize(cudaStreamLegacy), "waiting for a count");
    return *host_ctl;
  }

  // Slots per tile for about `expected` hits in n elements: room for 8 times the tile's mean and
  // some (a threshold from the step before lags behind a growing V), a power of two in
  // [256, kTile]: 0.5 bytes per element at most at low densities.
  void size_stash(int64_t n, double expected) {
    const double per_tile = expected * static_cast<double>(kTile) / static_cast<double>(n);
    int s = 256;
    while (s < kTile && static_cast<double>(s) < 8.0 * per_tile + 64.0) s *= 2;
    slots = s;
  }
  dgc_cuda::Stash stash_of(int64_t n) {
    const int64_t entries = tiles_of(n) * static_cast<int64_t>(slots);
    return {stash.as<uint16_t>(entries), stash_val.as<float>(entries), slots};
  }

  // The k0-th and the k1-th largest |a| (a k of 0: none) into result[0] (and thr) and
  // result[1], on the device: one cooperative launch (radix_select.cuh).
  void radix_select(const dgc_cuda::RadixInput& in, int64_t k0, int64_t k1, bool check_nan,
                    bool reset_counts = false) {
    radix_tag += 4;  // tag + pass marks each pass's digits: never the last launch's values
    dgc_cuda::RadixJob job{
        in, k0, k1, check_nan ? 1 : 0, check_nan ? 1 : 0, reset_counts ? 1 : 0, radix_tag};
    const int grid = blocks_for(in.m, int64_t{kThreads} * 2, radix_blocks);
    void* args[] = {&job, &ctl, &radix};
    check_cuda(cudaLaunchCooperativeKernel(
                   reinterpret_cast<const void*>(&dgc_cuda::radix_select_kernel),
                   dim3(static_cast<unsigned>(grid)), dim3(kThreads), args, 0, nullptr),
               "the radix select");
  }

  // A stash pass over x at *thr, its counts added to *counter (and per tile into tile_c1).
  void stash_pass_at(const float* x, int64_t n, const float* thr, unsigned long long* counter) {
    const int64_t tiles = tiles_of(n);
    const bool vec = reinterpret_cast<uintptr_t>(x) % 16 == 0;
    auto* xv = const_cast<float*>(x);  // read only: kCompensate is false
    const auto launch = vec ? dgc_cuda::stash_pass_kernel<false, false, true>
                            : dgc_cuda::stash_pass_kernel<false, false, false>;
    launch<<<static_cast<unsigned>(tiles), kThreads>>>(
        nullptr, xv, nullptr, n, 0.0f, thr, 0, ctl, counter, 1, stash_of(n),
        tile_hits.as<long long>(tiles), tile_c1.as<long long>(tiles),
        dgc_cuda::SampleOut{nullptr, 0, 1});
    check_launch("a stash pass");
    ++scans.full_scans;
  }

  // A stash pass over x at t (clears the counters first): its count at t in ctl->count.
  void stash_pass(const float* x, int64_t n, float t) {
    dgc_cuda::set_threshold_kernel<<<1, 1>>>(ctl, t, 1, 1);
    stash_pass_at(x, n, &ctl->thr, &ctl->count);
  }

  // The stashed elements at or above ctl->thr (t >= 0 sets it and clears the count first),
  // counted per tile.
  void stash_count(const float* x, int64_t n, float t) {
    if (t >= 0.0f) dgc_cuda::set_threshold_kernel<<<1, 1>>>(ctl, t, 1, 0);
    const int64_t tiles = tiles_of(n);
    dgc_cuda::stash_count_kernel<<<blocks_for(tiles, kThreads / 32, int64_t{1} << 30), kThreads>>>(
        tiles, ctl, stash_of(n), tile_hits.as<long long>(tiles), tile_c1.as<long long>(tiles));
    check_launch("a stash count");
  }

  // The elements of x at or above ctl->thr in index order, the first `limit`, into (oi, ov), from
  // the stash when it holds them, else from x (tile_c1 then holds a stash pass's counts at thr).
  // With mk (only from the stash), the written indices are also masked; returns whether they were.
  bool compact_ge(const float* x, int64_t n, bool from_stash, int64_t limit, int64_t* oi, float* ov,
                  dgc_cuda::Masking mk = {nullptr, nullptr, 0}) {
    const int64_t tiles = tiles_of(n);
    long long* c1 = tile_c1.as<long long>(tiles);
    const int write_blocks = blocks_for(tiles, kThreads / 32, int64_t{1} << 30);
    if (from_stash && tiles <= (int64_t{dgc_cuda::kGroups} << dgc_cuda::kGroupShift)) {
      // Offsets from the count pass's group sums: no scan kernel.
      dgc_cuda::stash_write_kernel<<<write_blocks, kThreads>>>(
          tiles, ctl, stash_of(n), tile_hits.as<long long>(tiles), c1, nullptr, limit, oi, ov, mk);
      check_launch("a compaction");
      return mk.v != nullptr;
    }
    long long* off = tile_off.as<long long>(tiles);
    if (tiles <= dgc_cuda::kScanTiles) {
      dgc_cuda::tile_scan_kernel<<<1, 1024>>>(c1, tiles, off);
    } else {
      size_t bytes = 0;
      check_cuda(cub::DeviceScan::ExclusiveSum(nullptr, bytes, c1, off, tiles), "sizing a scan");
      void* tmp = scratch.reserve(std::max<size_t>(bytes, 1));
      check_cuda(cub::DeviceScan::ExclusiveSum(tmp, bytes, c1, off, tiles), "the tile offsets");
    }
    if (from_stash) {
      dgc_cuda::stash_write_kernel<<<write_blocks, kThreads>>>(
          tiles, ctl, stash_of(n), tile_hits.as<long long>(tiles), c1, off, limit, oi, ov, mk);
      check_launch("a compaction");
      return mk.v != nullptr;
    } else {
      dgc_cuda::tile_write_kernel<Mode::kGe><<<static_cast<unsigned>(tiles), kThreads>>>(
          x, n, nullptr, x, ctl, 0, 0, 0, off, off, limit, oi, ov);
    }
    check_launch("a compaction");
    return false;
  }

  // The k largest |a[0, m)|, ties at the k-th by lower position, in position order, as indices
  // (idx_map[j], or j) and values x[index] into sel_*: a radix select and two passes over a.
  // check_nan: the lowest NaN position into ctl->nan_first.
  void topk_into(const float* a, int64_t m, const int64_t* idx_map, int64_t k, const float* x,
                 bool check_nan) {
    radix_select({a, m, 0, 1, nullptr, nullptr}, 0, k, check_nan);
    dgc_cuda::set_threshold_kernel<<<1, 1>>>(ctl, 0.0f, 0, 0);
    const int64_t tiles = tiles_of(m);
    long long* c1 = tile_c1.as<long long>(tiles);
    long long* c2 = tile_c2.as<long long>(tiles);
    long long* off = tile_off.as<long long>(tiles);
    long long* c2b = tile_c2_before.as<long long>(tiles);
    dgc_cuda::tile_count_kernel<Mode::kTie>
        <<<static_cast<unsigned>(tiles), kThreads>>>(a, m, ctl, 1, c1, c2);
    dgc_cuda::tile_offsets_kernel<<<1, 1024>>>(c1, c2, tiles, k, 1, ctl, off, c2b);
    dgc_cuda::tile_write_kernel<Mode::kTie><<<static_cast<unsigned>(tiles), kThreads>>>(
        a, m, idx_map, x, ctl, 1, k, 1, off, c2b, k, sel_idx.as<int64_t>(k), sel_val.as<float>(k));
    check_launch("the exact top-k");
  }

  // select_sampled's decisions (sparse_selection.cc), the sample taken from `start`. In a
  // step (step_mask: its U and V, masked at the selection), the fused pass left a stash at
  // ctl->hint and its hit count in ctl->list_hits; the next provisional threshold (rank
  // next_rank of the sample) goes to ctl->hint.
  CudaSparseSelection select_sampled(const float* x, const DgcSamplePlan& plan, int64_t start,
                                     const DgcSelectOptions& options,
                                     const dgc_cuda::Masking* step_mask, int64_t next_rank);
};

CudaSparseSelection CudaDgcSelector::Impl::select_sampled(const float* x, const DgcSamplePlan& plan,
                                                          int64_t start,
                                                          const DgcSelectOptions& options,
                                                          const dgc_cuda::Masking* step_mask,
                                                          int64_t next_rank) {
  const bool in_step = step_mask != nullptr;
  bool speculated = false;  // the compaction at the first threshold is already written
  const int64_t n = plan.numel;
  const int64_t k = plan.num_selects;
  const int64_t ms = (n - start + plan.stride - 1) / plan.stride;
  float* sample_ptr = sample.as<float>(ms);
  const int64_t ks = std::min<int64_t>(plan.top_k_samples, ms);
  const int64_t r = in_step && next_rank <= ms ? next_rank : 0;
  // In a step with a provisional threshold, the floor select finds the sample's threshold among
  // the sampled values at or above it (floor_select.cuh); the radix select runs when it cannot.
  const bool try_floor = in_step && hint > 0.0f && r > 0 && r <= dgc_cuda::kCandidates;
  auto sample_select = [&](bool floor) {
    // The momentum correction wrote the sample (and its NaN check): its ks-th largest with its
    // r-th (the next provisional threshold, used or not below) and the count of sampled values
    // at or above the provisional threshold, then the stash's count at the threshold.
    if (floor) {
      dgc_cuda::floor_select_kernel<<<blocks_for(ms, int64_t{kThreads} * 4, 1024), kThreads>>>(
          {sample_ptr, ms, ks, r, &ctl->hint}, ctl, radix);
      check_launch("the floor select");
    } else {
      radix_select({sample_ptr, ms, 0, 1, nullptr, &ctl->hint}, ks, r, false);
      ++scans.radix_selects;
    }
    stash_count(x, n, -1.0f);  // a list scan once the stash is known to hold the threshold
  };
  if (in_step) {
    sample_select(try_floor);
  } else {
    // The strided sample (its NaN check) and its ks-th largest, then the stash pass at it: its
    // count at the threshold. (Stashing at the floor of the threshold's first digit while the
    // last radix passes ran on a second stream was slower: 0.124-0.136 ms against 0.118 ms at
    // 25.6M, the floor letting about ten times more elements into the stash.)
    radix_select({x, ms, start, plan.stride, sample_ptr, nullptr}, ks, 0, true, true);
    ++scans.radix_selects;
    stash_pass_at(x, n, &ctl->thr, &ctl->count);
    // The usual outcome, compacted before the read-back: the count at the sample's threshold is
    // within bounds, so the result is the first min(count, k) stashed elements at it. Kept below
    // only when the host's decisions come to exactly that; its launch hides behind the read-back.
    if (tiles_of(n) <= (int64_t{dgc_cuda::kGroups} << dgc_cuda::kGroupShift)) {
      const int64_t tiles = tiles_of(n);
      dgc_cuda::
          stash_write_kernel<<<blocks_for(tiles, kThreads / 32, int64_t{1} << 30), kThreads>>>(
              tiles, ctl, stash_of(n), tile_hits.as<long long>(tiles), tile_c1.as<long long>(tiles),
              nullptr, k, sel_idx.as<int64_t>(k), sel_val.as<float>(k),
              dgc_cuda::Masking{nullptr, nullptr, 0});
      check_launch("a compaction");
      speculated = true;
    }
  }
  Ctl h = read_ctl();
  if (h.nan_first != dgc_cuda::kNoNan) throw_nan(h.nan_first, n, "DGC selection");
  // The step had a provisional threshold (the stash and the CPU's list are at it); whether the CPU
  // keeps it: its list held and about next_rank sampled values at or above it (high, in aux).
  const bool hinted = in_step && h.hint > 0.0f && std::isfinite(h.hint);
  auto keeps_hint = [&] {
    const bool listed = hinted && h.list_hits <= static_cast<unsigned long long>(n / 16 + 4 * k);
    const auto high = static_cast<int64_t>(h.aux);
    return listed && 2 * high >= next_rank && high <= 2 * next_rank;
  };
  if (try_floor && (h.floored == 0 || (static_cast<int64_t>(h.aux) < r && !keeps_hint()))) {
    // No threshold among the listed values, or the next provisional threshold is needed and lies
    // below them: the radix select.
    dgc_cuda::set_threshold_kernel<<<1, 1>>>(ctl, 0.0f, 0, 0);
    sample_select(false);
    h = read_ctl();
  } else if (try_floor) {
    ++scans.floor_selects;
  }
  float thr = h.thr;
  float stash_thr = 0.0f;  // the stash holds every element at or above it
  bool stash_ok = false;   // and no tile overflowed its slots
  if (in_step) {
    stash_thr = h.hint;
    stash_ok = hinted && h.overflow == 0;
  } else {
    stash_thr = thr;
    stash_ok = h.overflow == 0;
  }
  auto on_stash = [&](float t) { return stash_ok && t >= stash_thr; };
  // One count at t: from the stash when it holds t, else a stash pass over x at t.
  auto scan = [&](float t) {
    if (on_stash(t)) {
      stash_count(x, n, t);
      ++scans.list_scans;
    } else {
      stash_pass(x, n, t);
      stash_thr = t;
      const Ctl c = read_ctl();
      stash_ok = c.overflow == 0;
      return static_cast<int64_t>(c.count);
    }
    return static_cast<int64_t>(read_ctl().count);
  };
  int64_t cnt = 0;
  if (on_stash(thr)) {
    cnt = static_cast<int64_t>(h.count);
    if (in_step) ++scans.list_scans;
  } else {
    speculated = false;  // a tile overflowed: the stash it compacted is incomplete
    cnt = scan(thr);
  }
  // The next provisional threshold (the CPU's next_threshold), left on the device.
  if (in_step) {
    if (!keeps_hint()) {
      dgc_cuda::set_hint_kernel<<<1, 1>>>(ctl, r > 0 ? 1 : 0);  // rank past the sample: 0
      hint = 0.0f;
      if (r > 0) std::memcpy(&hint, &h.result[1], sizeof hint);
      check_launch("the next provisional threshold");
    }
  }
  int rounds = 0;
  bool resampled = false;
  // Adapt only when the threshold came from a true sample (the reference: n > num_samples).
  if (n > plan.num_samples) {
    for (int it = 0; it < options.max_adaptation_iters; ++it) {
      const dgc_detail::Adapt a = dgc_detail::adapt_threshold(cnt, k, options, thr);
      resampled = a == dgc_detail::Adapt::kResample;
      if (a != dgc_detail::Adapt::kRescan) break;
      ++rounds;
      cnt = scan(thr);
    }
  }
  CudaSparseSelection s;
  s.threshold = thr;
  s.rounds = rounds;
  if (cnt == 0) return s;
  // The elements at or above thr in index order (the last count was at thr), then the
  // reference's exact top-k over them, or its truncation to the first k.
  bool masked = false;  // by the compaction
  if (resampled) {
    int64_t* ci = cand_idx.as<int64_t>(cnt);
    float* cv = cand_val.as<float>(cnt);
    compact_ge(x, n, on_stash(thr), cnt, ci, cv);
    topk_into(cv, cnt, ci, k, x, false);
    s.count = k;
  } else if (speculated && rounds == 0) {
    s.count = std::min(cnt, k);  // the compaction launched before the read-back wrote them
  } else {
    s.count = std::min(cnt, k);
    const bool from_stash = on_stash(thr);
    masked = compact_ge(
        x, n, from_stash, s.count, sel_idx.as<int64_t>(s.count), sel_val.as<float>(s.count),
        in_step && from_stash ? *step_mask : dgc_cuda::Masking{nullptr, nullptr, 0});
  }
  s.indices = sel_idx.as<int64_t>(s.count);
  s.values = sel_val.as<float>(s.count);
  if (in_step && !masked) {
    dgc_cuda::mask_kernel<<<blocks_for(s.count, kThreads, int64_t{1} << 30), kThreads>>>(
        step_mask->u, step_mask->v, s.indices, s.count, step_mask->both);
    check_launch("the momentum factor masking");
  }
  return s;
}

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
  check_cuda(cudaMallocHost(&impl_->host_ctl, sizeof(Ctl)), "cudaMallocHost of the read-back");

  check_cuda(cudaMemset(impl_->ctl, 0, sizeof(Ctl)), "cudaMemset of the control block");
  check_cuda(cudaMalloc(&impl_->radix, sizeof(dgc_cuda::RadixScratch)),
             "cudaMalloc of the radix select's scratch");
  check_cuda(cudaMemset(impl_->radix, 0, sizeof(dgc_cuda::RadixScratch)),
             "cudaMemset of the radix select's scratch");
  const unsigned long long no_nan = dgc_cuda::kNoNan;
  check_cuda(cudaMemcpy(&impl_->radix->nan_first, &no_nan, sizeof no_nan, cudaMemcpyHostToDevice),
             "initialising the radix select's scratch");
  // The radix select's blocks wait for each other: all of them must be resident together.
  int cooperative = 0;
  int sms = 0;
  int per_sm = 0;
  check_cuda(cudaDeviceGetAttribute(&cooperative, cudaDevAttrCooperativeLaunch, device),
             "cudaDeviceGetAttribute");
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
             "cudaDeviceGetAttribute");
  check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, dgc_cuda::radix_select_kernel,
                                                           kThreads, 0),
             "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  TERSE_CHECK(cooperative != 0 && per_sm > 0, CudaError, "CudaDgcSelector: device ", device,
              " cannot run cooperative kernels (cooperative launch ", cooperative,
              ", resident blocks per SM ", per_sm,
              "); DGC's GPU selection needs them: run DGC on the CPU");
  impl_->radix_blocks = per_sm * sms;
}

CudaDgcSelector::~CudaDgcSelector() {
  if (impl_ == nullptr) return;
  cudaFree(impl_->ctl);
  cudaFree(impl_->radix);
  cudaFreeHost(impl_->host_ctl);
}

float CudaDgcSelector::hint() const {
  Impl::DeviceScope scope(impl_->device);
  return impl_->read_ctl().hint;
}

CudaDgcScans CudaDgcSelector::scans() const { return impl_->scans; }

CudaSparseSelection CudaDgcSelector::select(const float* x, const DgcSamplePlan& plan,
                                            uint64_t seed_step, const DgcSelectOptions& options) {
  dgc_detail::check_select(x, plan, options, "CudaDgcSelector");
  Impl::DeviceScope scope(impl_->device);
  Impl& m = *impl_;
  m.scans = {};
  const int64_t start = dgc_sample_start(plan, seed_step, options);
  m.size_stash(plan.numel, static_cast<double>(plan.num_selects));
  return m.select_sampled(x, plan, start, options, nullptr, 0);
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
  m.topk_into(x, n, nullptr, k, x, true);
  m.scans.full_scans = 5;  // 3 radix passes, the count and the write
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
  dgc_detail::check_memory_options(options);
  TERSE_CHECK(n >= 1 && u != nullptr && v != nullptr && g != nullptr, InvalidArgument,
              "CudaDgcSelector::step needs n >= 1 and U, V and g in GPU memory, got n ", n,
              "; send empty tensors dense or skip them");
  const DgcSamplePlan plan = dgc_sample_plan(n, density, select_options.sample_ratio);
  dgc_detail::check_select(v, plan, select_options, "CudaDgcSelector");
  Impl::DeviceScope scope(impl_->device);
  Impl& m = *impl_;
  m.scans = {};
  if (options.clip_max_norm > 0.0) clip(g, n, options.clip_max_norm, options.num_workers);
  m.size_stash(n, m.list_k * static_cast<double>(plan.num_selects));
  const int64_t start = dgc_sample_start(plan, seed_step, select_options);
  const int64_t ms = (n - start + plan.stride - 1) / plan.stride;
  dgc_cuda::reset_step_kernel<<<1, 1>>>(m.ctl);
  // The momentum correction, stashing every |V| >= the provisional threshold (none on the first
  // step, whose threshold is 0).
  const auto mom = static_cast<float>(options.momentum);
  const bool vec = (reinterpret_cast<uintptr_t>(u) | reinterpret_cast<uintptr_t>(v) |
                    reinterpret_cast<uintptr_t>(g)) %
                       16 ==
                   0;
  const auto launch = options.nesterov ? (vec ? dgc_cuda::stash_pass_kernel<true, true, true>
                                              : dgc_cuda::stash_pass_kernel<true, true, false>)
                                       : (vec ? dgc_cuda::stash_pass_kernel<true, false, true>
                                              : dgc_cuda::stash_pass_kernel<true, false, false>);
  const int64_t tiles = tiles_of(n);
  launch<<<static_cast<unsigned>(tiles), kThreads>>>(
      u, v, g, n, mom, &m.ctl->hint, 1, m.ctl, &m.ctl->list_hits, 0, m.stash_of(n),
      m.tile_hits.as<long long>(tiles), m.tile_c1.as<long long>(tiles),
      dgc_cuda::SampleOut{m.sample.as<float>(ms), start, plan.stride});
  check_launch("the momentum correction");
  const auto next_rank =
      static_cast<int64_t>(std::ceil(m.list_k * static_cast<double>(plan.top_k_samples)));
  const dgc_cuda::Masking mask{u, v, options.momentum_masking ? 1 : 0};
  try {
    return m.select_sampled(v, plan, start, select_options, &mask, next_rank);
  } catch (const NumericalError&) {
    // The CPU's state keeps no provisional threshold after a failed selection.
    dgc_cuda::set_hint_kernel<<<1, 1>>>(m.ctl, 0);
    m.hint = 0.0f;
    throw;
  }
}

void CudaDgcSelector::clip(float* g, int64_t n, double max_norm, int num_workers) {
  dgc_detail::check_clip_max_norm(max_norm);
  Impl& m = *impl_;
  double* sum = m.norm.as<double>(1);
  size_t bytes = 0;
  check_cuda(cub::DeviceReduce::TransformReduce(nullptr, bytes, g, sum, n, cuda::std::plus<>{},
                                                SquareToDouble{}, 0.0),
             "sizing the clipping norm");
  void* tmp = m.scratch.reserve(std::max<size_t>(bytes, 1));
  check_cuda(cub::DeviceReduce::TransformReduce(tmp, bytes, g, sum, n, cuda::std::plus<>{},
                                                SquareToDouble{}, 0.0),
             "the clipping norm");
  double sq = 0.0;
  check_cuda(cudaMemcpy(&sq, sum, sizeof sq, cudaMemcpyDeviceToHost), "reading the norm");
  double norm = 0.0;
  const double coef = dgc_detail::clip_coefficient(sq, n, max_norm, num_workers, norm);
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

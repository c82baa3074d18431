#include "terse/comm/algorithms/one_bit_all_reduce.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

// TERSE_ONE_BIT_PORTABLE builds the portable kernels on x86 too, to test them there.
#if defined(__SSE2__) && !defined(TERSE_ONE_BIT_PORTABLE)
#define TERSE_ONE_BIT_SSE2 1
#include <emmintrin.h>
#endif

#include "one_bit_all_reduce_internal.h"
#include "terse/comm/algorithms/pairwise_exchange.h"
#include "terse/comm/work.h"
#include "terse/core/check.h"
#include "terse/kernels/cuda_power_sgd.h"

namespace terse {

using one_bit_detail::bits_of;
using one_bit_detail::blocks_of;
using one_bit_detail::check_input;
using one_bit_detail::combine_lanes;
using one_bit_detail::kBlock;
using one_bit_detail::kFlagBadArguments;
using one_bit_detail::kFlagNonFinite;
using one_bit_detail::scale_of;

namespace {

// Sizes above this cannot be real buffers and would overflow the byte counts.
constexpr int64_t kMaxNumel = int64_t{1} << 48;
constexpr int kLanes = 8;
// kBlock (2^16 floats, 256 KiB) is also the unit of work one thread takes: it keeps the thread
// hand-off cost under 1 % of a block's work, and blocks are fixed by index, not by thread, so
// the sum is the same for any thread count.

// kPositiveByte[m], m bit k set iff lane k is negative: the wire byte, bit 7 - k set iff lane k
// is not (MSB first).
struct PositiveByteTable {
  uint8_t v[256];
  PositiveByteTable() {
    for (int m = 0; m < 256; ++m) {
      unsigned byte = 0;
      for (int k = 0; k < 8; ++k) byte |= static_cast<unsigned>(((m >> k) & 1) == 0) << (7 - k);
      v[m] = static_cast<uint8_t>(byte);
    }
  }
};
const PositiveByteTable kPositiveByte;

// ---- Eight-element kernels ------------------------------------------------------------------
// Every full-length pass works on groups of 8 floats (one sign byte). With SSE2 (every x86-64)
// they are written with intrinsics: GCC does not vectorise the byte packing, nor the sign-bit
// selects, on its own, and these passes are the CPU cost of the call. The portable fallback
// computes the same bits with the same IEEE operations in the same order.
#if defined(TERSE_ONE_BIT_SSE2)
struct F8 {
  __m128 lo, hi;
};
inline F8 load8(const float* p) { return {_mm_loadu_ps(p), _mm_loadu_ps(p + 4)}; }
inline void store8(float* p, F8 v) {
  _mm_storeu_ps(p, v.lo);
  _mm_storeu_ps(p + 4, v.hi);
}
inline F8 zero8() { return {_mm_setzero_ps(), _mm_setzero_ps()}; }
inline F8 add8(F8 a, F8 b) { return {_mm_add_ps(a.lo, b.lo), _mm_add_ps(a.hi, b.hi)}; }

// s (bits s_bits, s >= 0) with the sign bit set in lane k where bit 7 - k of `byte` is clear:
// +-s as the wire says, without a multiply or a table (+-s is exactly 1.0f * s and -1.0f * s).
inline F8 signed8(unsigned byte, uint32_t s_bits) {
  const __m128i b = _mm_set1_epi32(static_cast<int>(byte));
  const __m128i sign = _mm_set1_epi32(static_cast<int>(0x80000000u));
  const __m128i s = _mm_set1_epi32(static_cast<int>(s_bits));
  const __m128i neg_lo =
      _mm_cmpeq_epi32(_mm_and_si128(b, _mm_setr_epi32(128, 64, 32, 16)), _mm_setzero_si128());
  const __m128i neg_hi =
      _mm_cmpeq_epi32(_mm_and_si128(b, _mm_setr_epi32(8, 4, 2, 1)), _mm_setzero_si128());
  return {_mm_castsi128_ps(_mm_or_si128(s, _mm_and_si128(neg_lo, sign))),
          _mm_castsi128_ps(_mm_or_si128(s, _mm_and_si128(neg_hi, sign)))};
}

// sgn(x) < 0 lanes, as the reference's !(x >= 0): -0 counts as positive.
inline __m128 negative4(__m128 x) { return _mm_cmpnge_ps(x, _mm_setzero_ps()); }

// Sign byte of x: bit 7 - k set iff x[k] >= 0.
inline uint8_t sign_byte8(F8 x) {
  return kPositiveByte
      .v[_mm_movemask_ps(negative4(x.lo)) | (_mm_movemask_ps(negative4(x.hi)) << 4)];
}

// e = x - (+-s) with the sign of x: x - (-s) is exactly x + s, and -s is s with its sign bit
// set (s >= 0), so nothing branches on random signs.
inline void subtract_signed8(F8 x, uint32_t s_bits, float* e) {
  const __m128 sign = _mm_castsi128_ps(_mm_set1_epi32(static_cast<int>(0x80000000u)));
  const __m128 s = _mm_castsi128_ps(_mm_set1_epi32(static_cast<int>(s_bits)));
  _mm_storeu_ps(e, _mm_sub_ps(x.lo, _mm_or_ps(s, _mm_and_ps(negative4(x.lo), sign))));
  _mm_storeu_ps(e + 4, _mm_sub_ps(x.hi, _mm_or_ps(s, _mm_and_ps(negative4(x.hi), sign))));
}

// Eight double lanes of a sum of squares, lane k holding the elements k mod 8.
struct Lanes {
  __m128d a[4] = {_mm_setzero_pd(), _mm_setzero_pd(), _mm_setzero_pd(), _mm_setzero_pd()};
  void add_squares(F8 x) {
    const __m128d d0 = _mm_cvtps_pd(x.lo), d1 = _mm_cvtps_pd(_mm_movehl_ps(x.lo, x.lo));
    const __m128d d2 = _mm_cvtps_pd(x.hi), d3 = _mm_cvtps_pd(_mm_movehl_ps(x.hi, x.hi));
    a[0] = _mm_add_pd(a[0], _mm_mul_pd(d0, d0));
    a[1] = _mm_add_pd(a[1], _mm_mul_pd(d1, d1));
    a[2] = _mm_add_pd(a[2], _mm_mul_pd(d2, d2));
    a[3] = _mm_add_pd(a[3], _mm_mul_pd(d3, d3));
  }
  double lane(int k) const {
    const __m128d v = a[k / 2];
    return k % 2 == 0 ? _mm_cvtsd_f64(v) : _mm_cvtsd_f64(_mm_unpackhi_pd(v, v));
  }
};
#else
struct F8 {
  float v[8];
};
inline F8 load8(const float* p) {
  F8 r;
  std::memcpy(r.v, p, sizeof r.v);
  return r;
}
inline void store8(float* p, F8 v) { std::memcpy(p, v.v, sizeof v.v); }
inline F8 zero8() { return F8{{0, 0, 0, 0, 0, 0, 0, 0}}; }
inline F8 add8(F8 a, F8 b) {
  for (int k = 0; k < 8; ++k) a.v[k] += b.v[k];
  return a;
}
inline F8 signed8(unsigned byte, uint32_t s_bits) {
  F8 r;
  for (int k = 0; k < 8; ++k) {
    const uint32_t u = s_bits | (static_cast<uint32_t>(((byte >> (7 - k)) & 1) == 0) << 31);
    std::memcpy(&r.v[k], &u, sizeof u);
  }
  return r;
}
inline uint8_t sign_byte8(F8 x) {
  unsigned neg_mask = 0;
  for (int k = 0; k < 8; ++k) neg_mask |= static_cast<unsigned>(!(x.v[k] >= 0.0f)) << k;
  return kPositiveByte.v[neg_mask];
}
inline void subtract_signed8(F8 x, uint32_t s_bits, float* e) {
  for (int k = 0; k < 8; ++k) {
    const uint32_t u = s_bits | (static_cast<uint32_t>(!(x.v[k] >= 0.0f)) << 31);
    float sv;
    std::memcpy(&sv, &u, sizeof sv);
    e[k] = x.v[k] - sv;
  }
}
struct Lanes {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  void add_squares(F8 x) {
    for (int k = 0; k < 8; ++k) {
      const double d = x.v[k];
      a[k] += d * d;
    }
  }
  double lane(int k) const { return a[k]; }
};
#endif

// A block's lanes combined in the documented order.
double combine(const Lanes& l) {
  const double lanes[kLanes] = {l.lane(0), l.lane(1), l.lane(2), l.lane(3),
                                l.lane(4), l.lane(5), l.lane(6), l.lane(7)};
  return combine_lanes(lanes);
}

double sum_blocks(const std::vector<double>& block_sums, int64_t blocks) {
  return one_bit_detail::sum_blocks(block_sums.data(), blocks);
}

// x[i, i + 8) = m + e_w, with m = 0 past numel (the padding).
inline F8 worker_x(const float* m, const float* e, int64_t i, int64_t numel) {
  if (i + kLanes <= numel) return add8(load8(m + i), load8(e + i));
  float mp[kLanes];
  for (int k = 0; k < kLanes; ++k) mp[k] = i + k < numel ? m[i + k] : 0.0f;
  return add8(load8(mp), load8(e + i));
}

}  // namespace

namespace one_bit_detail {

double sum_lane_blocks(const double* lane_sums, int64_t blocks) {
  double ss = 0.0;
  for (int64_t b = 0; b < blocks; ++b) ss += combine_lanes(lane_sums + kLanes * b);
  return ss;
}

float scale_of(double sum_sq, int64_t count) {
  return static_cast<float>(std::sqrt(sum_sq / static_cast<double>(count)));
}

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

std::string check_input(const TensorView& inout, int64_t numel, const Communicator& comm) {
  if (inout.dtype != DType::kF32) {
    return detail::str_cat("inout holds ", dtype_name(inout.dtype), "; pass an f32 buffer");
  }
  if (inout.numel != numel) {
    return detail::str_cat("inout has ", inout.numel,
                           " elements but this OneBitAllReduce was built for ", numel,
                           "; pass the flat buffer it was constructed for");
  }
  if (inout.data == nullptr) {
    return "inout.data is null; pass an allocated buffer";
  }
  const Device wire = comm.device();
  if (wire.is_cuda() && inout.device != wire) {
    return detail::str_cat("inout is on ", inout.device.str(), " but the communicator (",
                           comm.backend(), ") moves memory of ", wire.str(), "; pass a buffer on ",
                           wire.str());
  }
  if (inout.device.is_cuda() && !cuda_power_sgd_is_device_memory(inout.data, inout.device.index)) {
    return detail::str_cat("inout says ", inout.device.str(), " but its pointer is not memory of ",
                           "that GPU; pass the view of a tensor on ", inout.device.str());
  }
  return std::string();
}

void gather_scale(Communicator& c, float mine, float* all_scales, CudaBuffer& staging) {
  const int w = c.size();
  if (c.device().is_cpu()) {
    c.all_gather(TensorView::of(&mine, 1), TensorView::of(all_scales, w));
    return;
  }
  const int device = c.device().index;
  const CudaCurrentDevice current(device);
  const size_t bytes = sizeof(float) * static_cast<size_t>(w + 1);
  if (staging.bytes() < bytes || staging.device() != device) staging = CudaBuffer(device, bytes);
  auto* d = static_cast<float*>(staging.data());
  cuda_copy(d, &mine, sizeof(float));
  c.all_gather(TensorView(d, 1, DType::kF32, c.device()),
               TensorView(d + 1, w, DType::kF32, c.device()));
  cuda_copy(all_scales, d + 1, sizeof(float) * static_cast<size_t>(w));
}

void check_worker_scales(const float* scales, int world, int me, const std::string& arg_error) {
  TERSE_CHECK(arg_error.empty(), InvalidArgument, "OneBitAllReduce on rank ", me, " of ", world,
              ": ", arg_error);
  std::string non_finite;
  for (int r = 0; r < world; ++r) {
    const float s = scales[r];
    TERSE_CHECK(s != kFlagBadArguments, CommError, "OneBitAllReduce on rank ", me, ": rank ", r,
                " passed invalid arguments (its own error says which); fix that rank's call");
    if (s == kFlagNonFinite) non_finite += detail::str_cat(non_finite.empty() ? "" : ", ", r);
  }
  TERSE_CHECK(non_finite.empty(), NumericalError, "OneBitAllReduce on rank ", me,
              ": non-finite values (NaN or Inf) in the input, or in the input plus the worker "
              "error, on rank(s) ",
              non_finite,
              "; no input and no error was changed on any rank: skip this step (e.g. lower the "
              "loss scale or the learning rate) and call all_reduce again");
  for (int r = 0; r < world; ++r) {
    const float s = scales[r];
    TERSE_CHECK(std::isfinite(s) && s >= 0.0f, CorruptData, "OneBitAllReduce on rank ", me,
                ": rank ", r, " sent worker scale ", s,
                " (must be finite and >= 0); the data was corrupted between ranks or rank ", r,
                " does not run this algorithm");
  }
}

void check_server_scales(const float* scales, int world, int me) {
  for (int r = 0; r < world; ++r) {
    const float s = scales[r];
    TERSE_CHECK(std::isfinite(s) && s >= 0.0f, CorruptData, "OneBitAllReduce on rank ", me,
                ": rank ", r, " sent server scale ", s,
                " (must be finite and >= 0; a server sum that overflowed f32 gives Inf); the data "
                "was corrupted between ranks or rank ",
                r, " does not run this algorithm");
  }
}

OneBitAllReduceReport make_report(int64_t numel, int64_t padded, int world, int collectives,
                                  bool pairwise_payload) {
  const int64_t chunk_bytes = padded / world / 8;
  OneBitAllReduceReport rep;
  rep.path = "compressed";
  rep.collectives = collectives;
  rep.bytes_sent = one_bit_all_reduce_bytes(numel, world);
  rep.bytes_dense = ring_all_reduce_bytes(sizeof(float) * static_cast<uint64_t>(numel), world);
  // The one-call forms hand over the whole buffer (own chunk included) and the server chunk once;
  // the pairwise rounds hand over W - 1 chunks per exchange.
  rep.payload_bytes =
      pairwise_payload
          ? 2 * static_cast<uint64_t>(world - 1) * static_cast<uint64_t>(chunk_bytes) + 8
          : static_cast<uint64_t>(padded / 8) + sizeof(float) + static_cast<uint64_t>(chunk_bytes) +
                sizeof(float);
  return rep;
}

}  // namespace one_bit_detail

// Up to T - 1 persistent workers (started when a pass first has blocks for them) plus the calling
// thread. A pass is a few milliseconds, so waking sleeping workers (tens of microseconds) is
// cheap next to it, and no thread is created per call. The workers' tasks are plain arithmetic
// on preallocated buffers and do not throw; only the calling thread's may (driving a Work).
class OneBitAllReduce::Pool {
 public:
  explicit Pool(int threads) : threads_(threads) {}
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

  // Calls fn(begin, end, on_caller) over [0, blocks) split into at most `threads` contiguous
  // ranges, one per thread, the first on the calling thread (on_caller true: only it may drive
  // the communicator); returns when all are done. Only the calling thread's range may throw.
  template <typename Fn>
  void for_blocks(int64_t blocks, const Fn& fn) {
    const int tasks = static_cast<int>(std::min<int64_t>(threads_, blocks));
    if (tasks <= 1) {
      if (blocks > 0) fn(int64_t{0}, blocks, true);
      return;
    }
    const std::function<void(int)> task = [&](int t) {
      fn(blocks * t / tasks, blocks * (t + 1) / tasks, t == 0);
    };
    while (static_cast<int>(workers_.size()) < tasks - 1) {
      const int k = static_cast<int>(workers_.size()) + 1;
      workers_.emplace_back([this, k] { loop(k); });
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = &task;
      tasks_ = tasks;
      pending_ = tasks - 1;
      ++generation_;
    }
    wake_.notify_all();
    try {
      task(0);
    } catch (...) {
      wait_for_workers();  // they still use `task`, which lives in this frame
      throw;
    }
    wait_for_workers();
  }

 private:
  void wait_for_workers() {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
    task_ = nullptr;
  }

  void loop(int k) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* task = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        // A worker that slept through a generation did not miss work: the caller waited for
        // every task of it before starting the next.
        if (k >= tasks_) continue;
        task = task_;
      }
      (*task)(k);
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
    }
  }

  const int threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int)>* task_ = nullptr;
  int tasks_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

int64_t one_bit_padded_numel(int64_t numel, int world_size) {
  TERSE_CHECK(numel > 0 && numel <= kMaxNumel, InvalidArgument,
              "OneBitAllReduce: numel must be in [1, 2^48], got ", numel,
              "; pass the element count of the flat buffer");
  TERSE_CHECK(world_size > 0, InvalidArgument, "OneBitAllReduce: world size must be > 0, got ",
              world_size, "; pass a valid communicator");
  const int64_t w = world_size;
  const int64_t divider = w * (w * 8 / std::gcd(w, int64_t{8}));
  return (numel + divider - 1) / divider * divider;
}

uint64_t one_bit_all_reduce_bytes(int64_t numel, int world_size) {
  const int64_t padded = one_bit_padded_numel(numel, world_size);
  if (world_size <= 1) return 0;
  const uint64_t w = static_cast<uint64_t>(world_size);
  const uint64_t chunk_bytes = static_cast<uint64_t>(padded) / (8 * w);
  return 2 * (w - 1) * chunk_bytes + 2 * (w - 1) * sizeof(float);
}

OneBitAllReduce::OneBitAllReduce(Communicator& comm, int64_t numel)
    : OneBitAllReduce(comm, numel, Options()) {}

OneBitAllReduce::OneBitAllReduce(Communicator& comm, int64_t numel, Options options)
    : Algorithm(comm),
      numel_(numel),
      padded_(one_bit_padded_numel(numel, comm.size())),
      pairwise_(options.pairwise),
      defer_(options.defer_worker_error) {
  TERSE_CHECK(options.threads >= 1, InvalidArgument,
              "OneBitAllReduce: Options::threads must be >= 1, got ", options.threads,
              "; pass 1 to run on the calling thread only");
  const size_t w = static_cast<size_t>(comm.size());
  worker_error_.assign(static_cast<size_t>(padded_), 0.0f);
  server_error_.assign(static_cast<size_t>(padded_) / w, 0.0f);
  worker_scales_.assign(w, 0.0f);
  server_scales_.assign(w, 0.0f);
  server_c_bits_.assign(w, 0);
  pool_ = std::make_unique<Pool>(options.threads);
}

OneBitAllReduce::~OneBitAllReduce() = default;

void OneBitAllReduce::size_host_scratch(bool passes) {
  const size_t w = static_cast<size_t>(comm().size());
  const size_t n = static_cast<size_t>(padded_);
  // The sign buffers serve the CPU passes and the GPU path's staging on a host communicator.
  const bool signs = passes || comm().device().is_cpu();
  signs_.resize(signs ? n / 8 : 0);
  received_.resize(signs ? n / 8 : 0);
  server_signs_.resize(signs ? n / (8 * w) : 0);
  gathered_signs_.resize(signs ? n / 8 : 0);
  server_sum_.resize(passes ? n / w : 0);
  block_sums_.resize(passes ? static_cast<size_t>(blocks_of(padded_)) : 0);
}

Device OneBitAllReduce::state_device() const {
  return dev_ ? Device::cuda(dev_->device) : Device::cpu();
}

size_t OneBitAllReduce::state_bytes() const {
  const auto n = static_cast<size_t>(padded_);
  return sizeof(float) * (n + n / static_cast<size_t>(comm().size()));
}

std::vector<float> OneBitAllReduce::worker_error() const {
  if (!dev_) return worker_error_;
  std::vector<float> v(static_cast<size_t>(padded_));
  cuda_copy(v.data(), dev_->worker_error.data(), sizeof(float) * v.size());
  return v;
}

std::vector<float> OneBitAllReduce::server_error() const {
  if (!dev_) return server_error_;
  std::vector<float> v(static_cast<size_t>(padded_ / comm().size()));
  cuda_copy(v.data(), dev_->server_error.data(), sizeof(float) * v.size());
  return v;
}

void OneBitAllReduce::reset_errors() {
  if (dev_) {
    cuda_zero(dev_->worker_error.data(), dev_->worker_error.bytes());
    cuda_zero(dev_->server_error.data(), dev_->server_error.bytes());
    return;
  }
  std::fill(worker_error_.begin(), worker_error_.end(), 0.0f);
  std::fill(server_error_.begin(), server_error_.end(), 0.0f);
}

OneBitAllReduceReport OneBitAllReduce::all_reduce(TensorView inout) {
  const std::string arg_error = check_input(inout, numel_, comm());
  if (arg_error.empty() && inout.device.is_cuda()) return all_reduce_device(inout);
  return all_reduce_host(inout, arg_error);
}

OneBitAllReduceReport OneBitAllReduce::all_reduce_host(TensorView inout,
                                                       const std::string& arg_error) {
  Communicator& c = comm();
  const int w = c.size();
  const int me = c.rank();
  const int64_t n = padded_;
  const int64_t numel = numel_;
  const int64_t chunk = n / w;  // elements of one server chunk
  const int64_t chunk_bytes = chunk / 8;
  if (arg_error.empty()) {
    if (dev_) move_state(Device::cpu());
    size_host_scratch(true);
  }
  const float* m = arg_error.empty() ? inout.as<float>() : nullptr;
  float* e = worker_error_.data();
  double* block_sums = block_sums_.data();

  // 1. ||m + e_w||^2 and the sign bytes of x (they do not depend on the scale), without
  // touching any state: a non-finite input leaves everything unchanged. double squares of finite
  // floats cannot overflow, so the sum is finite iff every x is.
  float my_scale = kFlagBadArguments;
  uint8_t* signs = signs_.data();
  using Clock = std::chrono::steady_clock;
  const auto since = [](Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  };
  double compress_s = 0;  // the CPU passes outside every collective (the report's compress_s)
  double overlap_s = 0, drain_s = 0;
  auto tc = Clock::now();
  if (arg_error.empty()) {
    const int64_t blocks = blocks_of(n);
    pool_->for_blocks(blocks, [&](int64_t b0, int64_t b1, bool) {
      // Last block first: the error pass below walks forward, so it starts on the blocks this
      // pass read last, which may still be in the cache. Each block's sum is its own, so the
      // order of visiting changes no bit.
      for (int64_t b = b1 - 1; b >= b0; --b) {
        Lanes lanes;
        const int64_t end = std::min(n, (b + 1) * kBlock);
        for (int64_t i = b * kBlock; i < end; i += kLanes) {
          const F8 x = worker_x(m, e, i, numel);
          lanes.add_squares(x);
          signs[i / kLanes] = sign_byte8(x);
        }
        block_sums[b] = combine(lanes);
      }
    });
    const double ss = sum_blocks(block_sums_, blocks);
    my_scale = std::isfinite(ss) ? scale_of(ss, n) : kFlagNonFinite;
  }
  compress_s += since(tc);
  // The first collective: it returns when the slowest rank has arrived (the report's wait_s).
  const auto tw = Clock::now();
  // A rank with bad arguments still takes part (through GPU staging on a GPU communicator).
  one_bit_detail::gather_scale(c, my_scale, worker_scales_.data(), flag_staging_);
  const double wait_s = since(tw);
  one_bit_detail::check_worker_scales(worker_scales_.data(), w, me, arg_error);

  // 2. The signs go out (all-to-all, chunk j to rank j). e_w <- x - s sgn(x) needs nothing from
  // the wire. Unless defer_, it runs while the all-to-all is in flight, the calling thread
  // driving the collective between its blocks (Open MPI progresses only inside MPI calls);
  // with defer_, it waits for the decode pass (step 5). x is recomputed from m and e rather
  // than kept from pass 1: storing it would cost the same memory traffic and would change e_w
  // before every rank is known to have finite input.
  const uint32_t s_bits = bits_of(worker_scales_[static_cast<size_t>(me)]);
  {
    const TensorView signs_in = TensorView::of(signs, n / 8);
    const TensorView signs_recv = TensorView::of(received_.data(), n / 8);
    const std::unique_ptr<Work> sent = pairwise_
                                           ? pairwise_all_to_all_async(c, signs_in, signs_recv)
                                           : c.all_to_all_async(signs_in, signs_recv);
    if (!defer_) {
      const auto to = Clock::now();
      pool_->for_blocks(blocks_of(n), [&](int64_t b0, int64_t b1, bool on_caller) {
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t end = std::min(n, (b + 1) * kBlock);
          for (int64_t i = b * kBlock; i < end; i += kLanes) {
            subtract_signed8(worker_x(m, e, i, numel), s_bits, e + i);
          }
          if (on_caller) sent->test();
        }
      });
      overlap_s += since(to);
    }
    const auto td = Clock::now();
    sent->wait(c.timeout());
    drain_s += since(td);
  }

  // 3. Server for chunk `me`: y = sum_j (s_w^j / W) unpack(bits_j) + e_s, each element summed
  // in registers over the W ranks (one pass over y instead of W), with ||y||^2 and the signs of
  // y in the same pass.
  tc = Clock::now();
  std::vector<uint32_t>& c_bits = server_c_bits_;
  for (int j = 0; j < w; ++j) {
    c_bits[static_cast<size_t>(j)] =
        bits_of(worker_scales_[static_cast<size_t>(j)] / static_cast<float>(w));
  }
  float* y = server_sum_.data();
  float* es = server_error_.data();
  const uint8_t* recv = received_.data();
  uint8_t* ssigns = server_signs_.data();
  const int64_t server_blocks = blocks_of(chunk);
  pool_->for_blocks(server_blocks, [&](int64_t b0, int64_t b1, bool) {
    for (int64_t b = b0; b < b1; ++b) {
      Lanes lanes;
      const int64_t end = std::min(chunk, (b + 1) * kBlock);
      for (int64_t i = b * kBlock; i < end; i += kLanes) {
        const int64_t g = i / kLanes;
        F8 acc = zero8();  // 0 + (+-c_0) keeps the reference's +0 for c_0 = 0
        for (int j = 0; j < w; ++j) {
          acc = add8(acc, signed8(recv[j * chunk_bytes + g], c_bits[static_cast<size_t>(j)]));
        }
        const F8 yv = add8(acc, load8(es + i));
        store8(y + i, yv);
        lanes.add_squares(yv);
        ssigns[g] = sign_byte8(yv);
      }
      block_sums[b] = combine(lanes);
    }
  });
  float my_server_scale = scale_of(sum_blocks(block_sums_, server_blocks), chunk);
  compress_s += since(tc);

  // 4. Every server's signs and scale go out while e_s <- y - s_s sgn(y) is computed (a pass
  // over N / W floats).
  {
    const TensorView mine = TensorView::of(ssigns, chunk_bytes);
    const TensorView all = TensorView::of(gathered_signs_.data(), n / 8);
    const std::unique_ptr<Work> signs_out =
        pairwise_ ? pairwise_all_gather_async(c, mine, all) : c.all_gather_async(mine, all);
    const std::unique_ptr<Work> scales_out = c.all_gather_async(
        TensorView::of(&my_server_scale, 1), TensorView::of(server_scales_.data(), w));
    const auto to = Clock::now();
    const uint32_t ss_bits = bits_of(my_server_scale);
    pool_->for_blocks(server_blocks, [&](int64_t b0, int64_t b1, bool on_caller) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t end = std::min(chunk, (b + 1) * kBlock);
        for (int64_t i = b * kBlock; i < end; i += kLanes) {
          subtract_signed8(load8(y + i), ss_bits, es + i);
        }
        if (on_caller) signs_out->test();
      }
    });
    const auto td = Clock::now();
    overlap_s += std::chrono::duration<double>(td - to).count();
    signs_out->wait(c.timeout());
    scales_out->wait(c.timeout());
    drain_s += since(td);
  }
  one_bit_detail::check_server_scales(server_scales_.data(), w, me);
  // 5. out[chunk j] = s_s^j unpack(bits of j), with defer_ in one pass with e_w <- x - s sgn(x):
  // each group of 8 reads m and e before it overwrites m (inout) with the output.
  tc = Clock::now();
  float* dst = inout.as<float>();
  const uint8_t* gathered = gathered_signs_.data();
  const float* scales = server_scales_.data();
  const int64_t full_numel = numel / kLanes * kLanes;
  pool_->for_blocks(blocks_of(defer_ ? n : numel), [&](int64_t b0, int64_t b1, bool) {
    const int64_t end = std::min(defer_ ? n : numel, b1 * kBlock);
    int64_t i = b0 * kBlock;
    while (i < end) {
      // Chunks are multiples of 8 elements: a group never straddles two servers.
      const int64_t j = i / chunk;
      const uint32_t ss_bits = bits_of(scales[j]);
      const int64_t stop = std::min(end, (j + 1) * chunk);
      for (; i < stop; i += kLanes) {
        if (defer_) subtract_signed8(worker_x(m, e, i, numel), s_bits, e + i);
        if (i < full_numel) {
          store8(dst + i, signed8(gathered[i / kLanes], ss_bits));
        } else if (i < numel) {
          float tail[kLanes];
          store8(tail, signed8(gathered[i / kLanes], ss_bits));
          std::memcpy(dst + i, tail, sizeof(float) * static_cast<size_t>(numel - i));
        }
      }
    }
  });
  compress_s += since(tc);

  OneBitAllReduceReport rep =
      one_bit_detail::make_report(numel_, n, w, pairwise_ ? 2 + 2 * (w - 1) : 4, pairwise_);
  rep.compress_s = compress_s;
  rep.wait_s = wait_s;
  rep.overlap_s = overlap_s;
  rep.drain_s = drain_s;
  return rep;
}

StateDict OneBitAllReduce::state_dict(const std::string& prefix) const {
  // Host copies wherever the errors live: a checkpoint moves across devices.
  std::vector<float> we = worker_error(), se = server_error();
  StateDict d;
  const auto nw = static_cast<int64_t>(we.size()), ns = static_cast<int64_t>(se.size());
  d.tensors[prefix + "worker_error"] = StateTensor::copy_of(TensorView::of(we.data(), nw), {nw});
  d.tensors[prefix + "server_error"] = StateTensor::copy_of(TensorView::of(se.data(), ns), {ns});
  return d;
}

namespace {

// The f32 tensor `key` of `state`, checked to hold `want` elements, all finite.
const StateTensor& checked_error(const StateDict& state, const std::string& key, int64_t want,
                                 int world_size) {
  const auto it = state.tensors.find(key);
  TERSE_CHECK(it != state.tensors.end(), InvalidArgument, "OneBitAllReduce state has no tensor ",
              key, "; pass a state saved by OneBitAllReduce::state_dict with the same prefix");
  const StateTensor& t = it->second;
  TERSE_CHECK(t.dtype == DType::kF32, InvalidArgument, "OneBitAllReduce state ", key, " holds ",
              dtype_name(t.dtype), "; expected f32 (pass a state saved by state_dict)");
  TERSE_CHECK(t.numel() == want && t.bytes.size() == sizeof(float) * static_cast<size_t>(want),
              InvalidArgument, "OneBitAllReduce state ", key, " has ", t.numel(),
              " elements but this OneBitAllReduce (", world_size, " ranks) needs ", want,
              "; load a checkpoint saved with the same buffer size and world size");
  for (int64_t i = 0; i < want; ++i) {
    float v;
    std::memcpy(&v, t.bytes.data() + sizeof(float) * static_cast<size_t>(i), sizeof v);
    TERSE_CHECK(std::isfinite(v), CorruptData, "OneBitAllReduce state ", key,
                " holds a non-finite value at ", i, "; load an earlier checkpoint");
  }
  return t;
}

}  // namespace

void OneBitAllReduce::load_state_dict(const StateDict& state, const std::string& prefix) {
  const int w = comm().size();
  // Named keys: a reference returned from a call with a temporary argument is what GCC 13's
  // -Wdangling-reference flags, although checked_error returns a tensor of `state`.
  const std::string worker_key = prefix + "worker_error", server_key = prefix + "server_error";
  const StateTensor& we = checked_error(state, worker_key, padded_, w);
  const StateTensor& se = checked_error(state, server_key, padded_ / w, w);
  // Both are valid: only now change anything, where the errors live.
  if (dev_) {
    cuda_copy(dev_->worker_error.data(), we.bytes.data(), we.bytes.size());
    cuda_copy(dev_->server_error.data(), se.bytes.data(), se.bytes.size());
    return;
  }
  std::memcpy(worker_error_.data(), we.bytes.data(), we.bytes.size());
  std::memcpy(server_error_.data(), se.bytes.data(), se.bytes.size());
}

}  // namespace terse

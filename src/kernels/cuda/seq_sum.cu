// cuda_sequential_sum (seq_sum.cuh): the CPU's sequential double sum of non-negative terms, bit
// for bit, from per-chunk integer maps computed in parallel and one walk over the chunks.
#include <cub/block/block_reduce.cuh>
#include <cub/device/device_scan.cuh>

#include <climits>

#include "codec_util.cuh"
#include "seq_sum.cuh"

namespace terse::cuda_codec {
namespace {

constexpr int kThreads = 256;
constexpr int kPerThread = 16;
constexpr int64_t kChunk = int64_t{kThreads} * kPerThread;  // terms per chunk
constexpr int kNoBinade = INT_MIN;
constexpr uint64_t kFrac = (uint64_t{1} << 52) - 1;
constexpr uint64_t kHidden = uint64_t{1} << 52;

__device__ __forceinline__ double term_of(float v, SumTerm t) {
  const double d = v;
  return t == SumTerm::kAbs ? fabs(d) : d * d;
}

// S -> S + inc[S & 1]: what a run of additions in one binade does to S = s / U.
struct ParityMap {
  unsigned long long inc[2];
};

// f then g.
struct ThenOp {
  __device__ ParityMap operator()(const ParityMap& f, const ParityMap& g) const {
    ParityMap h;
    h.inc[0] = f.inc[0] + g.inc[f.inc[0] & 1];
    h.inc[1] = f.inc[1] + g.inc[(1 + f.inc[1]) & 1];
    return h;
  }
};

// t / U = q + r with U = 2^eu: q, and r's class against 1/2 (0: below, 1: equal, 2: above).
__device__ __forceinline__ void split(double t, int eu, unsigned long long& q, int& cls) {
  const auto b = static_cast<unsigned long long>(__double_as_longlong(t));
  const int ex = static_cast<int>((b >> 52) & 0x7ff);
  unsigned long long mant = b & kFrac;
  int et = -1074;
  if (ex != 0) {
    mant |= kHidden;
    et = ex - 1075;
  }
  q = 0;
  cls = 0;
  if (mant == 0) return;
  const int shift = et - eu;
  if (shift >= 0) {
    // Only when t >= 2^(E+1): the walk then never uses this chunk's map (it fails the bound).
    q = mant << (shift < 10 ? shift : 10);
    return;
  }
  const int r = -shift;
  if (r >= 64) return;  // t < U/2: rounds away entirely
  q = mant >> r;
  const unsigned long long rem = mant & ((1ull << r) - 1);
  const unsigned long long half = 1ull << (r - 1);
  cls = rem > half ? 2 : (rem == half ? 1 : 0);
}

__global__ void __launch_bounds__(kThreads)
    chunk_sum_kernel(const float* __restrict__ x, int64_t m, SumTerm term,
                     double* __restrict__ sums, unsigned* __restrict__ nonfinite) {
  using Reduce = cub::BlockReduce<double, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  const int64_t base = int64_t{blockIdx.x} * kChunk + int64_t{threadIdx.x} * kPerThread;
  double s = 0.0;
  int bad = 0;
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    const int64_t i = base + j;
    if (i < m) {
      const double t = term_of(x[i], term);
      bad |= !isfinite(t);
      s += t;
    }
  }
  const double total = Reduce(tmp).Sum(s);
  const int any_bad = __syncthreads_or(bad);
  if (threadIdx.x == 0) {
    sums[blockIdx.x] = total;
    if (any_bad) atomicOr(nonfinite, 1u);
  }
}

// The map of chunk c for the binade that the (approximate) prefix sum puts s in at its start.
__global__ void __launch_bounds__(kThreads)
    chunk_map_kernel(const float* __restrict__ x, int64_t m, SumTerm term,
                     const double* __restrict__ prefix, ParityMap* __restrict__ maps,
                     int* __restrict__ binades) {
  using Reduce = cub::BlockReduce<ParityMap, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  const double p = prefix[blockIdx.x];
  const auto pb = static_cast<unsigned long long>(__double_as_longlong(p));
  const int pex = static_cast<int>((pb >> 52) & 0x7ff);
  if (!(p > 0.0) || pex == 0 || pex == 0x7ff) {  // the same for the whole block
    if (threadIdx.x == 0) binades[blockIdx.x] = kNoBinade;
    return;
  }
  const int e = pex - 1023;
  const int eu = e - 52;
  ParityMap f{{0, 0}};
  const int64_t base = int64_t{blockIdx.x} * kChunk + int64_t{threadIdx.x} * kPerThread;
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    const int64_t i = base + j;
    if (i < m) {
      unsigned long long q;
      int cls;
      split(term_of(x[i], term), eu, q, cls);
#pragma unroll
      for (int par = 0; par < 2; ++par) {
        // Parity of S + q before the rounding step decides a tie (to even).
        const unsigned long long odd = (par + f.inc[par] + q) & 1;
        f.inc[par] += q + (cls == 2 ? 1 : (cls == 1 ? odd : 0));
      }
    }
  }
  const ParityMap total = Reduce(tmp).Reduce(f, ThenOp());
  if (threadIdx.x == 0) {
    maps[blockIdx.x] = total;
    binades[blockIdx.x] = e;
  }
}

// One block; thread 0 walks the chunks in order, the others stage data into shared memory.
__global__ void __launch_bounds__(kThreads)
    walk_kernel(const float* __restrict__ x, int64_t m, SumTerm term, int64_t chunks,
                const double* __restrict__ sums, const ParityMap* __restrict__ maps,
                const int* __restrict__ binades, const unsigned* __restrict__ nonfinite,
                double* __restrict__ out) {
  __shared__ double s_sum[kThreads];
  __shared__ ParityMap s_map[kThreads];
  __shared__ int s_bin[kThreads];
  __shared__ float s_x[kChunk];
  __shared__ int s_stop;
  if (*nonfinite != 0) {
    if (threadIdx.x == 0) *out = __longlong_as_double(0x7ff8000000000000ll);
    return;
  }
  double s = 0.0;  // thread 0's
  for (int64_t c0 = 0; c0 < chunks; c0 += kThreads) {
    const int cnt = static_cast<int>(chunks - c0 < kThreads ? chunks - c0 : kThreads);
    if (threadIdx.x < cnt) {
      s_sum[threadIdx.x] = sums[c0 + threadIdx.x];
      s_map[threadIdx.x] = maps[c0 + threadIdx.x];
      s_bin[threadIdx.x] = binades[c0 + threadIdx.x];
    }
    __syncthreads();
    int k = 0;
    while (k < cnt) {
      if (threadIdx.x == 0) {
        int stop = cnt;
        for (; k < cnt; ++k) {
          const double cs = s_sum[k];
          if (cs == 0.0) continue;  // all terms +0: s + 0 == s
          if (!(s > 0.0)) {
            stop = k;
            break;
          }
          const auto bits = static_cast<unsigned long long>(__double_as_longlong(s));
          const int e = static_cast<int>((bits >> 52) & 0x7ff) - 1023;
          if (e != s_bin[k]) {
            stop = k;
            break;
          }
          // Every partial sum of the chunk is below s + sum(t) + chunk * U/2; with room for
          // the error of cs (< 2^-41 relative) and of this bound's own arithmetic, it must stay
          // below 2^(e+1), so the chunk never leaves the binade.
          const double u = ldexp(1.0, e - 52);
          const double hi = s + cs * (1.0 + 0x1p-38) + static_cast<double>(kChunk) * u;
          if (!(hi < ldexp(1.0, e + 1) * (1.0 - 0x1p-40))) {
            stop = k;
            break;
          }
          unsigned long long big = (bits & kFrac) | kHidden;
          big += s_map[k].inc[big & 1];
          s = __longlong_as_double(static_cast<long long>((bits & ~kFrac) | (big & kFrac)));
        }
        s_stop = stop;
      }
      __syncthreads();
      const int stop = s_stop;
      if (stop < cnt) {
        const int64_t first = (c0 + stop) * kChunk;
        const int64_t len = m - first < kChunk ? m - first : kChunk;
        for (int64_t j = threadIdx.x; j < len; j += kThreads) s_x[j] = x[first + j];
        __syncthreads();
        if (threadIdx.x == 0) {
          for (int64_t j = 0; j < len; ++j) s += term_of(s_x[j], term);
        }
        k = stop + 1;
      } else {
        k = cnt;
      }
      __syncthreads();
    }
  }
  if (threadIdx.x == 0) *out = s;
}

}  // namespace

SeqSum cuda_sequential_sum(const float* x, int64_t m, SumTerm term) {
  SeqSum r;
  if (m == 0) return r;
  const int64_t chunks = (m + kChunk - 1) / kChunk;
  TERSE_CHECK(chunks < (int64_t{1} << 31), InvalidArgument, "sequential sum of ", m,
              " terms needs more than 2^31 blocks; split the tensor");
  auto* sums = static_cast<double*>(scratch(Scratch::kChunkSums, chunks * sizeof(double)));
  auto* prefix = static_cast<double*>(scratch(Scratch::kChunkPrefix, chunks * sizeof(double)));
  auto* maps = static_cast<ParityMap*>(
      scratch(Scratch::kChunkFns, chunks * (sizeof(ParityMap) + sizeof(int))));
  auto* binades = reinterpret_cast<int*>(maps + chunks);
  auto* flags = static_cast<unsigned*>(scratch(Scratch::kFlags, 2 * sizeof(double)));
  auto* out = reinterpret_cast<double*>(flags + 2);
  cuda_check(cudaMemsetAsync(flags, 0, sizeof(unsigned)), "cudaMemsetAsync");
  const auto grid = static_cast<unsigned>(chunks);
  chunk_sum_kernel<<<grid, kThreads>>>(x, m, term, sums, flags);
  check_launch("chunk_sum_kernel launch");
  size_t tmp_bytes = 0;
  cuda_check(cub::DeviceScan::ExclusiveSum(nullptr, tmp_bytes, sums, prefix, chunks),
             "cub::DeviceScan::ExclusiveSum (size)");
  void* tmp = scratch(Scratch::kCub, tmp_bytes);
  cuda_check(cub::DeviceScan::ExclusiveSum(tmp, tmp_bytes, sums, prefix, chunks),
             "cub::DeviceScan::ExclusiveSum");
  chunk_map_kernel<<<grid, kThreads>>>(x, m, term, prefix, maps, binades);
  check_launch("chunk_map_kernel launch");
  walk_kernel<<<1, kThreads>>>(x, m, term, chunks, sums, maps, binades, flags, out);
  check_launch("walk_kernel launch");
  unsigned bad = 0;
  to_host(&bad, flags, sizeof bad, "copy of the sum's finite flag");
  to_host(&r.sum, out, sizeof r.sum, "copy of the sequential sum");
  r.finite = bad == 0;
  return r;
}

}  // namespace terse::cuda_codec

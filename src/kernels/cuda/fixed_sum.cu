// enqueue_fixed_sum (fixed_sum.cuh): the fixed-order double sum of
// terse/kernels/fixed_order_sum.h, bit for bit, as lane partials and a pairwise tree.
#include <climits>

#include "codec_util.cuh"
#include "fixed_sum.cuh"

namespace terse::cuda_codec {
namespace {

using fixed_sum::kBlock;
using fixed_sum::kLanes;
using fixed_sum::kLaneTerms;
using fixed_sum::Term;

// Leaves per thread block, in the lane pass and in each tree pass: a power of two, and a multiple
// of kLanes so that a block's 16 lanes sit in one half-warp.
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
static_assert(kThreads % 32 == 0 && kLanes == 16, "a half-warp holds one block's lanes");

// At step s (1, 2, 4, ...), lane l with l % 2s == 0 adds the aligned subtree [l + s, l + 2s) to
// its own [l, l + s): the pairwise tree of the CPU. Lanes not on the grid compute values nobody
// reads.
__device__ __forceinline__ double warp_tree(double v, int width) {
  const int lane = static_cast<int>(threadIdx.x & 31);
  for (int s = 1; s < width; s *= 2) {
    const double right = __shfl_down_sync(0xffffffffu, v, static_cast<unsigned>(s));
    if ((lane & (2 * s - 1)) == 0) v = v + right;
  }
  return v;
}

// The tree over the thread block's kThreads leaves (leaf t = thread t's v); the root at thread 0.
__device__ __forceinline__ double block_tree(double v) {
  __shared__ double warp_root[kWarps];
  v = warp_tree(v, 32);
  if ((threadIdx.x & 31) == 0) warp_root[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    v = threadIdx.x < kWarps ? warp_root[threadIdx.x] : 0.0;
    v = warp_tree(v, kWarps);
  }
  return v;
}

// Thread m computes lane partial p_m (block m / 16, lane m % 16) from its terms in order; the
// thread block then reduces its kThreads partials (those past the last are +0). With kPack, the
// warp's sign bits of each step (two blocks' 16 consecutive elements) become 4 bytes, each
// written by the lane that holds its first element.
template <bool kPack>
__global__ void __launch_bounds__(kThreads)
    lanes_kernel(const float* __restrict__ x, int64_t n, Term term, uint8_t* __restrict__ bits,
                 double* __restrict__ out) {
  const int64_t m = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  const int64_t first = (m / kLanes) * kBlock + m % kLanes;
  const int lane = static_cast<int>(threadIdx.x & 31);
  double p = 0.0;
#pragma unroll 8
  for (int t = 0; t < kLaneTerms; ++t) {
    const int64_t i = first + int64_t{kLanes} * t;
    const bool in = i < n;
    const float v = in ? x[i] : 0.0f;
    if (in) p = p + fixed_sum::term(v, term);
    if (kPack) {
      // Every lane takes part (the loop is uniform); bit q of the ballot is element i - lane + q.
      const unsigned neg = __ballot_sync(0xffffffffu, in && v < 0.0f);  // sign(0) = +1
      if ((lane & 7) == 0 && in) {
        bits[i >> 3] = static_cast<uint8_t>(__brev((neg >> lane) & 0xffu) >> 24);  // MSB first
      }
    }
  }
  const double root = block_tree(p);
  if (threadIdx.x == 0) out[blockIdx.x] = root;
}

// One level of the tree: aligned groups of kThreads nodes (those past `count` are +0).
__global__ void __launch_bounds__(kThreads)
    tree_kernel(const double* __restrict__ in, int64_t count, double* __restrict__ out) {
  const int64_t m = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  const double root = block_tree(m < count ? in[m] : 0.0);
  if (threadIdx.x == 0) out[blockIdx.x] = root;
}

int64_t groups_of(int64_t count) { return (count + kThreads - 1) / kThreads; }

}  // namespace

void enqueue_fixed_sum(const float* x, int64_t n, Term term, double* out, uint8_t* neg_bits) {
  TERSE_CHECK(n >= 1, InvalidArgument, "enqueue_fixed_sum: n ", n, " must be positive");
  int64_t count = groups_of(fixed_sum::num_partials(n));
  TERSE_CHECK(count <= INT_MAX, InvalidArgument, "fixed-order sum of ", n,
              " elements needs more than 2^31 thread blocks; split the tensor");
  // Every level above the root, one after the other in one scratch buffer.
  int64_t total = 0;
  for (int64_t c = count; c > 1; c = groups_of(c)) total += c;
  auto* level =
      count == 1
          ? out
          : static_cast<double*>(scratch(Scratch::kChunkSums, static_cast<size_t>(total) * 8));
  const auto grid = static_cast<unsigned>(count);
  if (neg_bits != nullptr) {
    lanes_kernel<true><<<grid, kThreads>>>(x, n, term, neg_bits, level);
  } else {
    lanes_kernel<false><<<grid, kThreads>>>(x, n, term, nullptr, level);
  }
  check_launch("lanes_kernel launch");
  while (count > 1) {
    const int64_t next = groups_of(count);
    double* dst = next == 1 ? out : level + count;
    tree_kernel<<<static_cast<unsigned>(next), kThreads>>>(level, count, dst);
    check_launch("tree_kernel launch");
    level = dst;
    count = next;
  }
}

}  // namespace terse::cuda_codec

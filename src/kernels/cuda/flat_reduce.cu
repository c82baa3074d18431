// cuda_fixed_sums and cuda_positive_max (terse/kernels/cuda_flat_reduce.h).
#include <climits>
#include <cstring>

#include "codec_util.cuh"
#include "fixed_sum.cuh"
#include "terse/kernels/cuda_flat_reduce.h"

namespace terse {

using cuda_codec::check_launch;
using cuda_codec::cuda_check;
using cuda_codec::Scratch;

namespace {

constexpr int kMaxDevices = 64;
constexpr int kThreads = 256;
constexpr int64_t kChunk = 16384;  // elements per thread block of the max

// One thread block's piece of a range, and the range's slot in the output.
struct MaxChunk {
  const float* data;
  int64_t begin, end;
  int64_t out;
};

// m only grows through x > m from +0, so it is +0 or a positive float (never NaN): the block's
// maximum is then order-free, and positive floats order as their bit patterns do, so an unsigned
// atomicMax on the bits combines the blocks.
__global__ void __launch_bounds__(kThreads)
    positive_max_kernel(const MaxChunk* __restrict__ chunks, unsigned* __restrict__ out) {
  __shared__ float warp_max[kThreads / 32];
  const MaxChunk c = chunks[blockIdx.x];
  float m = 0.0f;
  for (int64_t i = c.begin + threadIdx.x; i < c.end; i += kThreads) {
    const float x = c.data[i];
    if (x > m) m = x;
  }
  for (int s = 16; s > 0; s /= 2) {
    const float o = __shfl_down_sync(0xffffffffu, m, static_cast<unsigned>(s));
    if (o > m) m = o;
  }
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x / 32] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) {
      if (warp_max[w] > m) m = warp_max[w];
    }
    if (m > 0.0f) atomicMax(out + c.out, __float_as_uint(m));
  }
}

void check_ranges(int device, const std::vector<CudaF32Range>& ranges, const char* fn) {
  TERSE_CHECK(device >= 0 && device < kMaxDevices, InvalidArgument, fn, ": device index ", device,
              " out of range");
  for (size_t i = 0; i < ranges.size(); ++i) {
    TERSE_CHECK(ranges[i].n >= 0, InvalidArgument, fn, ": range ", i, " has n ", ranges[i].n);
    TERSE_CHECK(ranges[i].n == 0 || ranges[i].data != nullptr, InvalidArgument, fn, ": range ", i,
                " has ", ranges[i].n, " elements but a null pointer");
  }
}

// Runs fn() with `device` current, then restores the caller's device.
template <typename Fn>
void on_device(int device, const Fn& fn) {
  int previous = 0;
  cuda_check(cudaGetDevice(&previous), "cudaGetDevice");
  cuda_check(cudaSetDevice(device), "cudaSetDevice");
  try {
    fn();
  } catch (...) {
    cudaSetDevice(previous);
    throw;
  }
  cuda_check(cudaSetDevice(previous), "cudaSetDevice");
}

}  // namespace

std::vector<double> cuda_fixed_sums(int device, const std::vector<CudaF32Range>& ranges,
                                    fixed_sum::Term term) {
  check_ranges(device, ranges, "cuda_fixed_sums");
  std::vector<double> sums(ranges.size(), 0.0);
  if (ranges.empty()) return sums;
  on_device(device, [&] {
    // enqueue_fixed_sum uses the kChunkSums slot; the results gather in kPartials.
    auto* out = static_cast<double*>(
        cuda_codec::scratch(Scratch::kPartials, sizeof(double) * ranges.size()));
    for (size_t i = 0; i < ranges.size(); ++i) {
      if (ranges[i].n > 0)
        cuda_codec::enqueue_fixed_sum(ranges[i].data, ranges[i].n, term, out + i);
    }
    cuda_codec::to_host(sums.data(), out, sizeof(double) * sums.size(), "cuda_fixed_sums");
    // Empty ranges were never written on the device: +0, as host_sum gives.
    for (size_t i = 0; i < ranges.size(); ++i) {
      if (ranges[i].n == 0) sums[i] = 0.0;
    }
  });
  return sums;
}

std::vector<float> cuda_positive_max(int device, const std::vector<CudaF32Range>& ranges) {
  check_ranges(device, ranges, "cuda_positive_max");
  std::vector<float> maxima(ranges.size(), 0.0f);
  std::vector<MaxChunk> chunks;
  for (size_t i = 0; i < ranges.size(); ++i) {
    for (int64_t b = 0; b < ranges[i].n; b += kChunk) {
      const int64_t e = ranges[i].n - b < kChunk ? ranges[i].n : b + kChunk;
      chunks.push_back({ranges[i].data, b, e, static_cast<int64_t>(i)});
    }
  }
  if (chunks.empty()) return maxima;
  TERSE_CHECK(chunks.size() <= static_cast<size_t>(INT_MAX), InvalidArgument,
              "cuda_positive_max: ", chunks.size(), " chunks in one launch; split the call");
  on_device(device, [&] {
    // The table (16-byte aligned), then the outputs' bits.
    const size_t table = sizeof(MaxChunk) * chunks.size();
    const size_t out_at = (table + 15) / 16 * 16;
    auto* dev = static_cast<unsigned char*>(
        cuda_codec::scratch(Scratch::kPartials2, out_at + sizeof(unsigned) * ranges.size()));
    auto* out = reinterpret_cast<unsigned*>(dev + out_at);
    cuda_codec::to_device(dev, chunks.data(), table, "cuda_positive_max's table");
    cuda_check(cudaMemsetAsync(out, 0, sizeof(unsigned) * ranges.size(), nullptr),
               "cudaMemsetAsync of cuda_positive_max's results");
    positive_max_kernel<<<static_cast<unsigned>(chunks.size()), kThreads>>>(
        reinterpret_cast<const MaxChunk*>(dev), out);
    check_launch("positive_max_kernel launch");
    std::vector<unsigned> bits(ranges.size());
    cuda_codec::to_host(bits.data(), out, sizeof(unsigned) * bits.size(), "cuda_positive_max");
    for (size_t i = 0; i < bits.size(); ++i) std::memcpy(&maxima[i], &bits[i], sizeof(float));
  });
  return maxima;
}

}  // namespace terse

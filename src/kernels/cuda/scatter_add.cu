// Rank-ordered scatter-add of sparse lists on the GPU (terse/kernels/cuda_scatter_add.h).
#include <vector>

#include "codec_util.cuh"
#include "terse/kernels/cuda_scatter_add.h"

namespace terse {

using namespace cuda_codec;

namespace {

constexpr int kThreads = 256;
constexpr unsigned long long kNoBad = ~0ull;

// The first position j of the list whose index is out of [0, n) or not above index j - 1.
__global__ void __launch_bounds__(kThreads)
    validate_list_kernel(const int64_t* __restrict__ idx, int64_t count, int64_t n,
                         unsigned long long* __restrict__ first_bad) {
  const int64_t j = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (j >= count) return;
  const int64_t v = idx[j];
  const bool ok = v >= 0 && v < n && (j == 0 || idx[j - 1] < v);
  if (!ok) atomicMin(first_bad, static_cast<unsigned long long>(j));
}

// Indices unique within a list: no two threads touch one element.
__global__ void __launch_bounds__(kThreads)
    add_list_kernel(const int64_t* __restrict__ idx, const float* __restrict__ val, int64_t count,
                    float* __restrict__ out) {
  const int64_t j = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (j >= count) return;
  out[idx[j]] += val[j];
}

}  // namespace

void cuda_scatter_add(const CudaSparseList* lists, size_t num_lists, float* out, int64_t n,
                      bool accumulate) {
  const char* fn = "cuda_scatter_add";
  check_numel(n, fn);
  TERSE_CHECK(lists != nullptr || num_lists == 0, InvalidArgument, fn, ": lists is null for ",
              num_lists, " lists");
  for (size_t r = 0; r < num_lists; ++r) {
    const CudaSparseList& l = lists[r];
    TERSE_CHECK(l.count >= 0, InvalidArgument, fn, ": list ", r, " has count ", l.count,
                "; expected >= 0");
    TERSE_CHECK(l.count <= n, CorruptData, "payload ", r, ": count ", l.count,
                " unique indices cannot fit in numel ", n);
  }
  check_device_ptr(out, n, fn, "out");
  for (size_t r = 0; r < num_lists; ++r) {
    check_device_ptr(lists[r].indices, lists[r].count, fn, "indices");
    check_device_ptr(lists[r].values, lists[r].count, fn, "values");
  }
  if (num_lists > 0) {
    auto* bad = static_cast<unsigned long long*>(
        scratch(Scratch::kFlags, num_lists * sizeof(unsigned long long)));
    cuda_check(cudaMemsetAsync(bad, 0xff, num_lists * sizeof(unsigned long long)),
               "cudaMemsetAsync");
    for (size_t r = 0; r < num_lists; ++r) {
      if (lists[r].count == 0) continue;
      validate_list_kernel<<<blocks_for(lists[r].count, kThreads), kThreads>>>(
          lists[r].indices, lists[r].count, n, bad + r);
      check_launch("validate_list_kernel launch");
    }
    std::vector<unsigned long long> first(num_lists);
    to_host(first.data(), bad, num_lists * sizeof(unsigned long long), "copy of the validation");
    for (size_t r = 0; r < num_lists; ++r) {
      if (first[r] == kNoBad) continue;
      const auto j = static_cast<int64_t>(first[r]);
      int64_t v[2] = {-1, -1};  // index j - 1 (if any) and j
      to_host(v + (j == 0 ? 1 : 0), lists[r].indices + (j == 0 ? 0 : j - 1),
              (j == 0 ? 1 : 2) * sizeof(int64_t), "copy of the bad index");
      TERSE_THROW(CorruptData, "payload ", r, ": index ", j, " is ", v[1], j > 0 ? " after " : "",
                  j > 0 ? std::to_string(v[0]) : std::string(),
                  "; expected strictly increasing indices in [0, ", n, ")");
    }
  }
  if (!accumulate && n > 0) {
    cuda_check(cudaMemsetAsync(out, 0, static_cast<size_t>(n) * sizeof(float)),
               "cudaMemsetAsync of out");
  }
  for (size_t r = 0; r < num_lists; ++r) {
    if (lists[r].count == 0) continue;
    add_list_kernel<<<blocks_for(lists[r].count, kThreads), kThreads>>>(
        lists[r].indices, lists[r].values, lists[r].count, out);
    check_launch("add_list_kernel launch");
  }
  cuda_check(cudaDeviceSynchronize(), "cuda_scatter_add");
}

}  // namespace terse

// cuda_param_state_apply (terse/kernels/param_state_apply.h): one kernel per (Rule, storage
// type), each block one chunk of one tensor, as the optimizers' multi-tensor executor
// (multi_tensor_apply.cu) does. Built with -fmad=false (src/kernels/CMakeLists.txt) so every
// Rule gives the host executor's bits.
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "codec_util.cuh"
#include "launch_table.cuh"
#include "pack4.cuh"
#include "terse/core/check.h"
#include "terse/core/dispatch.h"
#include "terse/core/dtype.h"
#include "terse/kernels/cuda_multi_tensor.h"
#include "terse/kernels/param_state_apply.h"

namespace terse {

using cuda_codec::cuda_check;
using cuda_launch::ChunkRef;
using cuda_launch::Pack4;
namespace {

constexpr int kThreads = 512;
constexpr int kMaxDevices = 64;

// A task as the kernel sees it (host pointers into device memory).
struct Desc {
  void* p;
  float* s;
  int64_t n;
  int vec;  // p and s are aligned for 4-element vector accesses
};

template <typename Rule, typename T>
__global__ void __launch_bounds__(kThreads)
    param_state_kernel(const Rule rule, const Desc* __restrict__ descs,
                       const ChunkRef* __restrict__ chunks) {
  const ChunkRef c = chunks[blockIdx.x];
  const Desc d = descs[c.task];
  T* __restrict__ p = static_cast<T*>(d.p);
  float* __restrict__ s = d.s;
  const int64_t begin = int64_t{c.chunk} * kCudaChunkElements;
  const int64_t end = d.n < begin + kCudaChunkElements ? d.n : begin + kCudaChunkElements;
  int64_t first_scalar = begin;
  if (d.vec) {
    // Chunks start at multiples of 4, so groups of 4 never straddle two blocks.
    const int64_t groups = (end - begin) / 4;
    for (int64_t q = threadIdx.x; q < groups; q += kThreads) {
      const int64_t i = begin + 4 * q;
      Pack4<T> pp{};
      Pack4<float> sp{};
      if constexpr (Rule::kReadsParam) pp = *reinterpret_cast<const Pack4<T>*>(p + i);
      if constexpr (Rule::kReadsState) sp = *reinterpret_cast<const Pack4<float>*>(s + i);
#pragma unroll
      for (int e = 0; e < 4; ++e) rule(pp.v[e], sp.v[e]);
      if constexpr (Rule::kWritesParam) *reinterpret_cast<Pack4<T>*>(p + i) = pp;
      if constexpr (Rule::kWritesState) *reinterpret_cast<Pack4<float>*>(s + i) = sp;
    }
    first_scalar = begin + 4 * groups;
  }
  // Misaligned tensors and the tail: one element at a time, through the same Rule.
  for (int64_t i = first_scalar + threadIdx.x; i < end; i += kThreads) {
    T pv{};
    float sv = 0;
    if constexpr (Rule::kReadsParam) pv = p[i];
    if constexpr (Rule::kReadsState) sv = s[i];
    rule(pv, sv);
    if constexpr (Rule::kWritesParam) p[i] = pv;
    if constexpr (Rule::kWritesState) s[i] = sv;
  }
}

}  // namespace

template <typename Rule>
void cuda_param_state_apply(const Rule& rule, const std::vector<ParamStateTask>& tasks) {
  const Device device = param_state_device(tasks, "cuda_param_state_apply");
  if (tasks.empty()) return;
  TERSE_CHECK(device.is_cuda(), InvalidArgument, "cuda_param_state_apply: the tensors are on ",
              device.str(), "; pass CUDA tensors (or use cpu_param_state_apply)");
  TERSE_CHECK(device.index >= 0 && device.index < kMaxDevices, InvalidArgument,
              "cuda_param_state_apply: device index ", device.index, " out of range");
  TERSE_CHECK(tasks.size() < (size_t{1} << 31), InvalidArgument,
              "cuda_param_state_apply: ", tasks.size(), " tensors in one call");
  // One table per param dtype present: the descriptors, then the chunk references.
  using cuda_launch::is_aligned;
  using cuda_launch::kParamTypes;
  cuda_launch::PerTypeTable<Desc> table;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const ParamStateTask& t = tasks[i];
    TERSE_CHECK(t.param.numel / kCudaChunkElements < (int64_t{1} << 31), InvalidArgument,
                "cuda_param_state_apply: tensor ", i, " has ", t.param.numel,
                " elements, more than this executor's 2^31 chunks");
    if (t.param.numel == 0) continue;
    const int k = t.param.dtype == DType::kF32 ? 0 : t.param.dtype == DType::kBF16 ? 1 : 2;
    Desc d{};
    d.p = t.param.data;
    d.s = t.state;
    d.n = t.param.numel;
    d.vec = is_aligned(d.p, 4 * dtype_size(kParamTypes[k])) && is_aligned(d.s, 4 * sizeof(float));
    table.add(k, d, d.n, kCudaChunkElements);
  }
  if (table.empty()) return;  // every tensor is empty
  cuda_launch::with_device(device.index, [&] {
    table.launch(cuda_codec::Scratch::kLaunchTable,
                 "cudaMemcpyAsync of the param-state launch table",
                 [&](DType type, const Desc* d, const ChunkRef* c, unsigned blocks) {
                   dispatch_floating(type, [&](auto tag) {
                     param_state_kernel<Rule, decltype(tag)>
                         <<<blocks, kThreads, 0, cudaStreamLegacy>>>(rule, d, c);
                   });
                   cuda_check(cudaGetLastError(), "the param-state launch");
                 });
  });
}

#define TERSE_PARAM_STATE_INSTANTIATE(R) \
  template void cuda_param_state_apply(const R&, const std::vector<ParamStateTask>&);
TERSE_PARAM_STATE_RULES(TERSE_PARAM_STATE_INSTANTIATE)
#undef TERSE_PARAM_STATE_INSTANTIATE

}  // namespace terse

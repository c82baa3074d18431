// cuda_multi_tensor_apply (terse/kernels/cuda_multi_tensor.h): one kernel per (Rule, storage
// type), each block one chunk of one tensor. Built with -fmad=false (src/kernels/CMakeLists.txt)
// so every Rule gives the CPU executor's bits.
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

namespace terse {

using cuda_codec::cuda_check;
using cuda_launch::ChunkRef;
using cuda_launch::Pack4;
namespace {

constexpr int kThreads = 512;
constexpr int kMaxDevices = 64;

// A task as the kernel sees it (host pointers into device memory).
template <typename Rule>
struct Desc {
  Rule rule;
  void* p;
  const void* g;
  float* s[4];
  int64_t n;
  int vec;  // every pointer is aligned for 4-element vector loads
};

// One element: the Rule on registers, as the CPU loop does it.
template <typename Rule>
__device__ __forceinline__ void apply_one(const Rule& r, float& pv, float gv, float* x) {
  if constexpr (Rule::kNumStates > 3) {
    r(pv, gv, x[0], x[1], x[2], x[3]);
  } else {
    r(pv, gv, x[0], x[1], x[2]);
  }
}

template <typename Rule, typename T>
__global__ void __launch_bounds__(kThreads)
    apply_kernel(const Desc<Rule>* __restrict__ descs, const ChunkRef* __restrict__ chunks) {
  constexpr int kN = Rule::kNumStates;
  const ChunkRef c = chunks[blockIdx.x];
  const Desc<Rule>& d = descs[c.task];
  const Rule r = d.rule;
  T* __restrict__ p = static_cast<T*>(d.p);
  const T* __restrict__ g = static_cast<const T*>(d.g);
  const int64_t begin = int64_t{c.chunk} * kCudaChunkElements;
  const int64_t end = d.n < begin + kCudaChunkElements ? d.n : begin + kCudaChunkElements;
  int64_t first_scalar = begin;
  if (d.vec) {
    // Chunks start at multiples of 4, so groups of 4 never straddle two blocks.
    const int64_t groups = (end - begin) / 4;
    for (int64_t q = threadIdx.x; q < groups; q += kThreads) {
      const int64_t i = begin + 4 * q;
      Pack4<T> pp = *reinterpret_cast<const Pack4<T>*>(p + i);
      const Pack4<T> gp = *reinterpret_cast<const Pack4<T>*>(g + i);
      Pack4<float> sp[4];
#pragma unroll
      for (int k = 0; k < kN; ++k) sp[k] = *reinterpret_cast<const Pack4<float>*>(d.s[k] + i);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x[4] = {0, 0, 0, 0};
#pragma unroll
        for (int k = 0; k < kN; ++k) x[k] = sp[k].v[e];
        float pv = load_as_float(pp.v, e);
        apply_one(r, pv, load_as_float(gp.v, e), x);
        store_from_float(pp.v, e, pv);
#pragma unroll
        for (int k = 0; k < kN; ++k) sp[k].v[e] = x[k];
      }
      *reinterpret_cast<Pack4<T>*>(p + i) = pp;
#pragma unroll
      for (int k = 0; k < kN; ++k) *reinterpret_cast<Pack4<float>*>(d.s[k] + i) = sp[k];
    }
    first_scalar = begin + 4 * groups;
  }
  // Misaligned tensors and the tail: one element at a time, through the same apply_one.
  for (int64_t i = first_scalar + threadIdx.x; i < end; i += kThreads) {
    float x[4] = {0, 0, 0, 0};
#pragma unroll
    for (int k = 0; k < kN; ++k) x[k] = d.s[k][i];
    float pv = load_as_float(p, i);
    apply_one(r, pv, load_as_float(g, i), x);
    store_from_float(p, i, pv);
#pragma unroll
    for (int k = 0; k < kN; ++k) d.s[k][i] = x[k];
  }
}

template <typename Rule>
int validate(const std::vector<CudaTensorTask<Rule>>& tasks) {
  int device = -1;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const CudaTensorTask<Rule>& t = tasks[i];
    TERSE_CHECK(t.param.device.is_cuda(), InvalidArgument, "cuda_multi_tensor_apply: tensor ", i,
                " is on ", t.param.device.str(), "; pass CUDA tensors (or use the CPU executor)");
    TERSE_CHECK(t.grad.device == t.param.device, InvalidArgument,
                "cuda_multi_tensor_apply: ", "tensor ", i, "'s grad is on ", t.grad.device.str(),
                " but its param on ", t.param.device.str());
    TERSE_CHECK(device < 0 || t.param.device.index == device, InvalidArgument,
                "cuda_multi_tensor_apply: tensor ", i, " is on cuda:", t.param.device.index,
                " but tensor 0 on cuda:", device, "; one call takes the tensors of one device");
    TERSE_CHECK(t.param.device.index >= 0 && t.param.device.index < kMaxDevices, InvalidArgument,
                "cuda_multi_tensor_apply: device index ", t.param.device.index, " out of range");
    device = t.param.device.index;
    const DType dt = t.param.dtype;
    TERSE_CHECK(dt == DType::kF32 || dt == DType::kBF16 || dt == DType::kF16, InvalidArgument,
                "cuda_multi_tensor_apply: tensor ", i, " has dtype ", dtype_name(dt),
                "; params must be f32, bf16 or f16");
    TERSE_CHECK(t.grad.dtype == dt && t.grad.numel == t.param.numel, InvalidArgument,
                "cuda_multi_tensor_apply: tensor ", i, "'s grad is ", dtype_name(t.grad.dtype), "[",
                t.grad.numel, "] but its param ", dtype_name(dt), "[", t.param.numel, "]");
    TERSE_CHECK(t.param.numel >= 0, InvalidArgument, "cuda_multi_tensor_apply: tensor ", i,
                " has numel ", t.param.numel);
    TERSE_CHECK(t.param.numel / kCudaChunkElements < (int64_t{1} << 31), InvalidArgument,
                "cuda_multi_tensor_apply: tensor ", i, " has ", t.param.numel,
                " elements, more than this executor's 2^31 chunks");
    if (t.param.numel == 0) continue;
    TERSE_CHECK(t.param.data != nullptr && t.grad.data != nullptr, InvalidArgument,
                "cuda_multi_tensor_apply: tensor ", i, " has a null param or grad");
    for (int k = 0; k < Rule::kNumStates; ++k) {
      TERSE_CHECK(t.states[k] != nullptr, InvalidArgument, "cuda_multi_tensor_apply: tensor ", i,
                  " has a null state ", k);
    }
  }
  TERSE_CHECK(tasks.size() < (size_t{1} << 31), InvalidArgument,
              "cuda_multi_tensor_apply: ", tasks.size(), " tensors in one call");
  return device;
}

}  // namespace

template <typename Rule>
void cuda_multi_tensor_apply(const std::vector<CudaTensorTask<Rule>>& tasks) {
  const int device = validate(tasks);
  if (device < 0) return;  // no tasks
  // One table per param dtype present: the descriptors, then the chunk references.
  using cuda_launch::is_aligned;
  using cuda_launch::kNumParamTypes;
  using cuda_launch::kParamTypes;
  cuda_launch::PerTypeTable<Desc<Rule>> table;
  for (int k = 0; k < kNumParamTypes; ++k) {
    for (const CudaTensorTask<Rule>& t : tasks) {
      if (t.param.dtype != kParamTypes[k] || t.param.numel == 0) continue;
      Desc<Rule> d{};
      d.rule = t.rule;
      d.p = t.param.data;
      d.g = t.grad.data;
      for (int s = 0; s < Rule::kNumStates; ++s) d.s[s] = t.states[s];
      d.n = t.param.numel;
      // 4-element vector loads need every array aligned to 4 elements.
      const size_t width = 4 * dtype_size(kParamTypes[k]);
      d.vec = is_aligned(d.p, width) && is_aligned(d.g, width);
      for (int s = 0; s < Rule::kNumStates; ++s) d.vec = d.vec && is_aligned(d.s[s], 16);
      table.add(k, d, d.n, kCudaChunkElements);
    }
  }
  cuda_launch::with_device(device, [&] {
    table.launch(cuda_codec::Scratch::kLaunchTable, "cudaMemcpyAsync of the launch table",
                 [](DType type, const Desc<Rule>* d, const ChunkRef* c, unsigned blocks) {
                   dispatch_floating(type, [&](auto tag) {
                     apply_kernel<Rule, decltype(tag)><<<blocks, kThreads>>>(d, c);
                   });
                   cuda_check(cudaGetLastError(), "the multi-tensor launch");
                 });
  });
}

void cuda_synchronize() { cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

namespace {

// Thread t: lane t % 8 of piece t / 8, summed in increasing index order, as the CPU's lane is;
// a launch for one dtype leaves the lanes of pieces of another dtype to that one's launch.
template <typename T>
__global__ void lane_sums_kernel(const CudaSumPiece* __restrict__ pieces, int64_t count,
                                 DType dtype, double* __restrict__ out) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= count * 8) return;
  const CudaSumPiece pc = pieces[t / 8];
  if (pc.dtype != dtype) return;
  const T* g = static_cast<const T*>(pc.data);
  double s = 0;
  for (int64_t i = pc.begin + t % 8; i < pc.end; i += 8) {
    const double v = load_as_float(g, i);
    s += v * v;
  }
  out[t] = s;
}

}  // namespace

std::vector<double> cuda_piece_sum_squares(int device, const std::vector<CudaSumPiece>& pieces) {
  std::vector<double> sums(pieces.size(), 0.0);
  if (pieces.empty()) return sums;
  TERSE_CHECK(device >= 0 && device < kMaxDevices, InvalidArgument,
              "cuda_piece_sum_squares: device index ", device, " out of range");
  int previous = 0;
  cuda_check(cudaGetDevice(&previous), "cudaGetDevice");
  cuda_check(cudaSetDevice(device), "cudaSetDevice");
  CudaSumPiece* dev_pieces = nullptr;
  double* dev_lanes = nullptr;
  const size_t n = pieces.size();
  std::vector<double> lanes(n * 8);
  cudaError_t err = cudaMalloc(&dev_pieces, n * sizeof(CudaSumPiece));
  if (err == cudaSuccess) err = cudaMalloc(&dev_lanes, n * 8 * sizeof(double));
  if (err == cudaSuccess) {
    err = cudaMemcpy(dev_pieces, pieces.data(), n * sizeof(CudaSumPiece), cudaMemcpyHostToDevice);
  }
  // One launch per dtype present; every piece has one dtype, so every lane is written once.
  const unsigned threads = 256;
  const auto blocks = static_cast<unsigned>((n * 8 + threads - 1) / threads);
  const auto count = static_cast<int64_t>(n);
  for (const DType dt : {DType::kF32, DType::kBF16, DType::kF16}) {
    if (err != cudaSuccess) break;
    bool any = false;
    for (const CudaSumPiece& pc : pieces) any = any || pc.dtype == dt;
    if (!any) continue;
    switch (dt) {
      case DType::kF32:
        lane_sums_kernel<float><<<blocks, threads>>>(dev_pieces, count, dt, dev_lanes);
        break;
      case DType::kBF16:
        lane_sums_kernel<BFloat16><<<blocks, threads>>>(dev_pieces, count, dt, dev_lanes);
        break;
      default:
        lane_sums_kernel<Half><<<blocks, threads>>>(dev_pieces, count, dt, dev_lanes);
        break;
    }
    err = cudaGetLastError();
  }
  if (err == cudaSuccess) {
    err = cudaMemcpy(lanes.data(), dev_lanes, n * 8 * sizeof(double), cudaMemcpyDeviceToHost);
  }
  cudaFree(dev_pieces);
  cudaFree(dev_lanes);
  cudaSetDevice(previous);
  cuda_check(err, "the sum of squares of the gradients");
  for (size_t i = 0; i < n; ++i) {
    double s = 0;
    for (int l = 0; l < 8; ++l) s += lanes[i * 8 + static_cast<size_t>(l)];
    sums[i] = s;
  }
  return sums;
}

void* cuda_alloc_zeroed(int device, size_t bytes) {
  if (bytes == 0) return nullptr;
  int previous = 0;
  cuda_check(cudaGetDevice(&previous), "cudaGetDevice");
  cuda_check(cudaSetDevice(device), "cudaSetDevice");
  void* ptr = nullptr;
  const cudaError_t err = cudaMalloc(&ptr, bytes);
  if (err == cudaSuccess) {
    const cudaError_t zero = cudaMemset(ptr, 0, bytes);
    if (zero != cudaSuccess) cudaFree(ptr);
    cudaSetDevice(previous);
    cuda_check(zero, "cudaMemset of optimizer state");
    return ptr;
  }
  cudaGetLastError();
  cudaSetDevice(previous);
  TERSE_THROW(CudaError, "cudaMalloc of ", bytes, " bytes of optimizer state on cuda:", device,
              " failed: ", cudaGetErrorString(err), "; free GPU memory or use fewer parameters");
}

void cuda_free(void* ptr) noexcept {
  if (ptr != nullptr) cudaFree(ptr);
}

void cuda_copy(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault), "cudaMemcpy");
}

#define TERSE_CUDA_MTA_INSTANTIATE(R) \
  template void cuda_multi_tensor_apply(const std::vector<CudaTensorTask<R>>&);
TERSE_CUDA_MTA_RULES(TERSE_CUDA_MTA_INSTANTIATE)
#undef TERSE_CUDA_MTA_INSTANTIATE

}  // namespace terse

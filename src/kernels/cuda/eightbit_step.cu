// cuda_eightbit_step (terse/kernels/cuda_eightbit_step.h): the 8-bit optimizers' step, one
// launch for every tensor. Built with -fmad=false and IEEE division and square root
// (src/kernels/CMakeLists.txt), and the per-element math is the CPU's (eightbit_element.h,
// quant_code.h), so params, codes and absmax get the CPU's bits.
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "codec_util.cuh"
#include "eightbit_kernel.cuh"
#include "launch_table.cuh"
#include "terse/core/check.h"
#include "terse/core/dtype.h"
#include "terse/kernels/cuda_eightbit_step.h"

namespace terse {
namespace {

using cuda_codec::cuda_check;
using cuda_eightbit::ChunkRef;
using cuda_eightbit::Desc;
using cuda_eightbit::kBlock;
using cuda_eightbit::kChunkBlocks;
using cuda_eightbit::kThreads;

constexpr int kMaxDevices = 64;

// The maps in the current device's memory. They are about 21 KB and the optimizers' are
// constants, so they are uploaded once per device and thread (as the scratch is kept), and again
// only when a call brings other ones; the launch table carries the per-step part alone.
const CudaQuantMap* resident_maps(int device, const CudaQuantMaps& maps) {
  thread_local std::unordered_map<int, CudaQuantMaps> uploaded;
  auto* dev = static_cast<CudaQuantMap*>(
      cuda_codec::scratch(cuda_codec::Scratch::kQuantMaps, sizeof maps.state));
  const auto it = uploaded.find(device);
  if (it == uploaded.end() || std::memcmp(&it->second, &maps, sizeof maps) != 0) {
    cuda_check(cudaMemcpy(dev, maps.state, sizeof maps.state, cudaMemcpyHostToDevice),
               "upload of the 8-bit step's maps");
    uploaded[device] = maps;
  }
  return dev;
}

// Whether the pipelined kernel runs on `device`: it needs more shared memory than a thread block
// gets unasked, which the device may not have (then the plain kernel runs, with the same
// results). TERSE_CUDA_EIGHTBIT_PLAIN=1 asks for the plain kernel, so the tests run both.
template <typename Rule, bool kSkip>
bool pipelined(int device) {
  const char* plain = std::getenv("TERSE_CUDA_EIGHTBIT_PLAIN");
  if (plain != nullptr && std::strcmp(plain, "1") == 0) return false;
  // 0: not asked yet, 1: granted, 2: refused; per device, as the attribute is.
  static std::atomic<int> state[kMaxDevices];
  int s = state[device].load(std::memory_order_acquire);
  if (s == 0) {
    using Shape = cuda_eightbit::Pipelined<Rule::kNumStates>;
    const cudaError_t err = cudaFuncSetAttribute(
        cuda_eightbit::eightbit_kernel<Rule, kSkip, Shape::kStages, Shape::kMinBlocks>,
        cudaFuncAttributeMaxDynamicSharedMemorySize, Shape::kDynamicSmem);
    if (err != cudaSuccess) (void)cudaGetLastError();  // clear it: the plain kernel runs
    s = err == cudaSuccess ? 1 : 2;
    state[device].store(s, std::memory_order_release);
  }
  return s == 1;
}

// The device of the tasks (-1 when there are none); throws before anything is launched.
template <typename Rule>
int validate(const std::vector<CudaEightBitTask<Rule>>& tasks) {
  constexpr const char* kFn = "cuda_eightbit_step";
  int device = -1;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const CudaEightBitTask<Rule>& t = tasks[i];
    TERSE_CHECK(t.param.device.is_cuda(), InvalidArgument, kFn, ": tensor ", i, " is on ",
                t.param.device.str(), "; pass CUDA tensors (or use the CPU step)");
    TERSE_CHECK(t.grad.device == t.param.device, InvalidArgument, kFn, ": tensor ", i,
                "'s grad is on ", t.grad.device.str(), " but its param on ", t.param.device.str());
    TERSE_CHECK(t.param.device.index >= 0 && t.param.device.index < kMaxDevices, InvalidArgument,
                kFn, ": device index ", t.param.device.index, " out of range");
    TERSE_CHECK(device < 0 || t.param.device.index == device, InvalidArgument, kFn, ": tensor ", i,
                " is on cuda:", t.param.device.index, " but tensor 0 on cuda:", device,
                "; one call takes the tensors of one device");
    device = t.param.device.index;
    const DType dt = t.param.dtype;
    TERSE_CHECK(dt == DType::kF32 || dt == DType::kBF16 || dt == DType::kF16, InvalidArgument, kFn,
                ": tensor ", i, " has dtype ", dtype_name(dt), "; params must be f32, bf16 or f16");
    TERSE_CHECK(t.grad.dtype == dt && t.grad.numel == t.param.numel, InvalidArgument, kFn,
                ": tensor ", i, "'s grad is ", dtype_name(t.grad.dtype), "[", t.grad.numel,
                "] but its param ", dtype_name(dt), "[", t.param.numel, "]");
    TERSE_CHECK(t.param.numel >= 0 && t.param.numel <= (int64_t{1} << 48), InvalidArgument, kFn,
                ": tensor ", i, " has numel ", t.param.numel, "; expected 0 <= numel <= 2^48");
    TERSE_CHECK(t.param.numel / (kChunkBlocks * kBlock) < (int64_t{1} << 31), InvalidArgument, kFn,
                ": tensor ", i, " has ", t.param.numel, " elements, more than this ",
                "kernel's 2^31 chunks of ", kChunkBlocks * kBlock, "; split the tensor");
    if (t.param.numel == 0) continue;
    TERSE_CHECK(t.param.data != nullptr && t.grad.data != nullptr, InvalidArgument, kFn,
                ": tensor ", i, " has a null param or grad");
    for (int k = 0; k < Rule::kNumStates; ++k) {
      const bool ok =
          t.eight_bit ? t.codes[k] != nullptr && t.absmax[k] != nullptr : t.values[k] != nullptr;
      TERSE_CHECK(ok, InvalidArgument, kFn, ": tensor ", i, " has a null ",
                  t.eight_bit ? "codes or absmax" : "f32 state", " array for state ", k);
    }
  }
  TERSE_CHECK(tasks.size() < (size_t{1} << 31), InvalidArgument, kFn, ": ", tasks.size(),
              " tensors in one call");
  return device;
}

}  // namespace

template <typename Rule, bool kSkipNonFiniteGrad>
void cuda_eightbit_step(const std::vector<CudaEightBitTask<Rule>>& tasks,
                        const CudaQuantMaps& maps) {
  const int device = validate(tasks);
  std::vector<Desc<Rule>> descs;
  std::vector<ChunkRef> chunks;
  cuda_eightbit::launch_table(tasks, descs, chunks);
  if (device < 0 || chunks.empty()) return;  // no element to update (a grid of 0 is an error)
  TERSE_CHECK(chunks.size() < (size_t{1} << 31), InvalidArgument,
              "cuda_eightbit_step: ", chunks.size(), " chunks of ", kChunkBlocks * kBlock,
              " elements in one call, more than one launch takes; step fewer parameters at once");
  cuda_launch::HostTable table;
  const size_t desc_at = table.append(descs);
  const size_t chunk_at = table.append(chunks);
  cuda_launch::with_device(device, [&] {
    const CudaQuantMap* dev_maps = resident_maps(device, maps);
    unsigned char* dev = cuda_launch::upload(table, cuda_codec::Scratch::kLaunchTable,
                                             "cudaMemcpyAsync of the 8-bit step's table");
    const auto* descs_dev = reinterpret_cast<const Desc<Rule>*>(dev + desc_at);
    const auto* chunks_dev = reinterpret_cast<const ChunkRef*>(dev + chunk_at);
    const unsigned grid = static_cast<unsigned>(chunks.size());
    using Shape = cuda_eightbit::Pipelined<Rule::kNumStates>;
    if (pipelined<Rule, kSkipNonFiniteGrad>(device)) {
      cuda_eightbit::eightbit_kernel<Rule, kSkipNonFiniteGrad, Shape::kStages, Shape::kMinBlocks>
          <<<grid, kThreads, Shape::kDynamicSmem>>>(descs_dev, chunks_dev, dev_maps);
    } else {
      using P = cuda_eightbit::Plain;
      cuda_eightbit::eightbit_kernel<Rule, kSkipNonFiniteGrad, P::kStages, P::kMinBlocks>
          <<<grid, kThreads>>>(descs_dev, chunks_dev, dev_maps);
    }
    cuda_check(cudaGetLastError(), "the 8-bit step's launch");
  });
}

#define TERSE_CUDA_EIGHTBIT_INSTANTIATE(R, S)                                     \
  template void cuda_eightbit_step<R, S>(const std::vector<CudaEightBitTask<R>>&, \
                                         const CudaQuantMaps&);
TERSE_CUDA_EIGHTBIT_RULES(TERSE_CUDA_EIGHTBIT_INSTANTIATE)
#undef TERSE_CUDA_EIGHTBIT_INSTANTIATE

}  // namespace terse

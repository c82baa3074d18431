// Where the time of CudaDgcSelector's radix select goes (a throwaway measurement, not built by
// CMake): nvcc -O3 -arch=sm_90 -std=c++17 -fmad=false -I../.. radix_micro.cu -o radix_micro
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../../src/compress/dgc/cuda/radix_select.cuh"
#include "micro_common.cuh"

using namespace terse::dgc_cuda;

__global__ void gather_kernel(const float* x, int64_t m, int64_t start, int64_t stride,
                              float* out) {
  const int64_t s = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < m; i += s) {
    out[i] = fabsf(x[start + i * stride]);
  }
}

__global__ void sync_kernel(int n) {
  cooperative_groups::grid_group g = cooperative_groups::this_grid();
  for (int i = 0; i < n; ++i) g.sync();
}

__global__ void empty_kernel() {}

int main() {
  const int64_t n = 25600000, stride = 100, ms = n / stride;
  const std::vector<float> h = gradient_like(n);
  float *x, *sample;
  CK(cudaMalloc(&x, n * 4));
  CK(cudaMalloc(&sample, ms * 4));
  CK(cudaMemcpy(x, h.data(), n * 4, cudaMemcpyHostToDevice));
  Ctl* ctl;
  RadixScratch* scr;
  CK(cudaMalloc(&ctl, sizeof(Ctl)));
  CK(cudaMalloc(&scr, sizeof(RadixScratch)));
  CK(cudaMemset(ctl, 0, sizeof(Ctl)));
  CK(cudaMemset(scr, 0, sizeof(RadixScratch)));
  unsigned long long nn = kNoNan;
  CK(cudaMemcpy(&scr->nan_first, &nn, 8, cudaMemcpyHostToDevice));
  int per_sm = 0, sms = 0;
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, radix_select_kernel, kThreads, 0));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  cudaFuncAttributes fa;
  CK(cudaFuncGetAttributes(&fa, radix_select_kernel));
  std::printf("radix_select_kernel: %d regs, %zu static smem, %d blocks/SM, %d SMs\n", fa.numRegs,
              fa.sharedSizeBytes, per_sm, sms);
  std::printf("empty launch: %.2f us\n", time_us([] { empty_kernel<<<1, 1>>>(); }));
  for (int blocks : {132, 264, 528, 1056}) {
    for (int nsync : {0, 1, 3}) {
      void* args[] = {&nsync};
      std::printf("coop %d blocks x256, %d grid syncs: %.2f us\n", blocks, nsync, time_us([&] {
                    CK(cudaLaunchCooperativeKernel((void*)sync_kernel, blocks, 256, args, 0, 0));
                  }));
    }
  }
  for (int blocks : {264, 528, 1056, 2048}) {
    std::printf("gather %lld strided (stride %lld) with %d blocks x256: %.2f us\n", (long long)ms,
                (long long)stride, blocks,
                time_us([&] { gather_kernel<<<blocks, 256>>>(x, ms, 7, stride, sample); }));
  }
  std::printf("contiguous gather of %lld: %.2f us\n", (long long)ms,
              time_us([&] { gather_kernel<<<1024, 256>>>(sample, ms, 0, 1, sample + 0); }));
  std::printf("stream-read 25.6M floats: %.2f us\n",
              time_us([&] { stream_kernel<<<132 * 8, 256>>>((const float4*)x, n / 4, sample); }));
  unsigned tag = 0;
  for (int grid : {66, 132, 198, 264})
    for (int variant = 0; variant < 3; ++variant) {
      RadixJob job{};
      if (variant == 0) job = {{x, ms, 7, stride, sample, nullptr}, 256, 0, 1, 1, 1};
      if (variant == 1) job = {{sample, ms, 0, 1, nullptr, nullptr}, 256, 0, 0, 0, 0};
      if (variant == 2) job = {{sample, ms, 0, 1, nullptr, nullptr}, 256, 1024, 0, 0, 0};
      void* args[] = {&job, &ctl, &scr};
      const char* names[] = {"select path (gather)", "step path (contiguous, 1 slot)",
                             "step path (contiguous, 2 slots)"};
      std::printf(
          "radix_select_kernel %s, %d blocks: %.2f us\n", names[variant], grid, time_us([&] {
            job.tag = (tag += 4);
            CK(cudaLaunchCooperativeKernel((void*)radix_select_kernel, grid, kThreads, args, 0, 0));
          }));
    }
  return 0;
}

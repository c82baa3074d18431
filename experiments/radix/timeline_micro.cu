// select()'s launches one prefix at a time (CUDA events, and the wall clock with the read-back).
// A throwaway measurement (README.md, "Sixth part").
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "../../src/compress/dgc/cuda/radix_select.cuh"
#include "../../src/compress/dgc/cuda/stash_kernels.cuh"
#include "micro_common.cuh"

using namespace terse::dgc_cuda;

__global__ void empty_kernel() {}

int main() {
  const int64_t n = 25600000;
  const int64_t stride = 100;
  const int64_t ms = n / stride;
  const std::vector<float> h = gradient_like(n);
  float* x;
  CK(cudaMalloc(&x, n * 4));
  CK(cudaMemcpy(x, h.data(), n * 4, cudaMemcpyHostToDevice));
  float* sample;
  CK(cudaMalloc(&sample, ms * 4));
  Ctl* ctl;
  CK(cudaMalloc(&ctl, sizeof(Ctl)));
  CK(cudaMemset(ctl, 0, sizeof(Ctl)));
  RadixScratch* scr;
  CK(cudaMalloc(&scr, sizeof(RadixScratch)));
  CK(cudaMemset(scr, 0, sizeof(RadixScratch)));
  const unsigned long long no_nan = kNoNan;
  CK(cudaMemcpy(&scr->nan_first, &no_nan, 8, cudaMemcpyHostToDevice));
  Ctl* host;
  CK(cudaMallocHost(&host, sizeof(Ctl)));
  const StashBuffers buffers(n, 256, 25600);
  const auto& [tiles, slots, off, val, hits, c1, oi, ov] = buffers;
  int per_sm = 0;
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, radix_select_kernel, kThreads, 0));
  int sms = 0;
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const int grid = per_sm * sms;
  unsigned tag = 0;
  auto radix = [&] {
    RadixJob job{{x, ms, 7, stride, sample, nullptr}, 256, 0, 1, 1, 1, (tag += 4)};
    void* args[] = {&job, &ctl, &scr};
    CK(cudaLaunchCooperativeKernel((void*)radix_select_kernel, grid, kThreads, args, 0, 0));
  };
  auto stash = [&] {
    stash_pass_kernel<false, false, true>
        <<<tiles, kThreads>>>(nullptr, x, nullptr, n, 0.0f, &ctl->thr, 0, ctl, &ctl->count, 1,
                              Stash{off, val, slots}, hits, c1, SampleOut{nullptr, 0, 1});
  };
  auto write = [&] {
    stash_write_kernel<<<(tiles + 7) / 8, kThreads>>>(tiles, ctl, Stash{off, val, slots}, hits, c1,
                                                      nullptr, 25600, oi, ov,
                                                      Masking{nullptr, nullptr, 0});
  };
  auto readback = [&] {
    CK(cudaMemcpyAsync(host, ctl, sizeof(Ctl), cudaMemcpyDeviceToHost, cudaStreamLegacy));
    CK(cudaStreamSynchronize(cudaStreamLegacy));
  };
  auto wall_us = [&](const std::function<void()>& f) {
    std::vector<double> t;
    f();
    CK(cudaDeviceSynchronize());
    for (int r = 0; r < 50; ++r) {
      const auto a = std::chrono::steady_clock::now();
      f();
      CK(cudaDeviceSynchronize());
      t.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  };
  std::printf("radix grid %d; events: nothing %.2f, empty kernel %.2f us\n", grid, time_us([] {}),
              time_us([] { empty_kernel<<<1, 32>>>(); }));
  std::printf("stream-read 25.6M floats: %.2f us\n",
              time_us([&] { stream_kernel<<<132 * 8, 256>>>((const float4*)x, n / 4, ov); }));
  for (int run = 0; run < 3; ++run) {
    std::printf(
        "radix %.2f | +stash %.2f | +write %.2f | +read-back %.2f us (events); wall %.2f; "
        "stash alone %.2f\n",
        time_us(radix), time_us([&] { radix(), stash(); }),
        time_us([&] { radix(), stash(), write(); }),
        time_us([&] { radix(), stash(), write(), readback(); }),
        wall_us([&] { radix(), stash(), write(), readback(); }), time_us(stash));
  }
  CK(cudaMemcpy(host, ctl, sizeof(Ctl), cudaMemcpyDeviceToHost));
  std::printf("count %llu thr %g overflow %u\n", host->count, host->thr, host->overflow);
  return 0;
}

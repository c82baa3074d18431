// The stash pass of CudaDgcSelector against a plain read of the same data, at several register
// limits (compile with -maxrregcount=R), and the read-back's round trip. A throwaway measurement.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../../src/compress/dgc/cuda/stash_kernels.cuh"
#include "micro_common.cuh"

using namespace terse::dgc_cuda;

int main() {
  const int64_t n = 25600000;
  const std::vector<float> h = gradient_like(n);
  std::vector<float> sorted(h);
  for (auto& v : sorted) v = std::fabs(v);
  std::nth_element(sorted.begin(), sorted.begin() + 25600, sorted.end(), std::greater<float>());
  const float thr = sorted[25600];
  float* x;
  CK(cudaMalloc(&x, n * 4));
  CK(cudaMemcpy(x, h.data(), n * 4, cudaMemcpyHostToDevice));
  Ctl* ctl;
  CK(cudaMalloc(&ctl, sizeof(Ctl)));
  CK(cudaMemset(ctl, 0, sizeof(Ctl)));
  CK(cudaMemcpy(&ctl->thr, &thr, 4, cudaMemcpyHostToDevice));
  Ctl* host;
  CK(cudaMallocHost(&host, sizeof(Ctl)));
  const StashBuffers buffers(n, 256, 25600);
  const auto& [tiles, slots, off, val, hits, c1, oi, ov] = buffers;
  cudaFuncAttributes fa;
  CK(cudaFuncGetAttributes(&fa, stash_pass_kernel<false, false, true>));
  std::printf("stash pass: %d regs\n", fa.numRegs);
  std::printf("stream-read 25.6M floats: %.2f us\n",
              time_us([&] { stream_kernel<<<132 * 8, 256>>>((const float4*)x, n / 4, ov); }));
  std::printf("stash pass at the 25600th largest: %.2f us\n", time_us([&] {
                stash_pass_kernel<false, false, true><<<tiles, kThreads>>>(
                    nullptr, x, nullptr, n, 0.0f, &ctl->thr, 0, ctl, &ctl->count, 1,
                    Stash{off, val, slots}, hits, c1, SampleOut{nullptr, 0, 1});
              }));
  std::printf("stash write: %.2f us\n", time_us([&] {
                stash_write_kernel<<<(tiles + 7) / 8, kThreads>>>(
                    tiles, ctl, Stash{off, val, slots}, hits, c1, nullptr, 25600, oi, ov,
                    Masking{nullptr, nullptr, 0});
              }));
  std::printf("stash count: %.2f us\n", time_us([&] {
                stash_count_kernel<<<(tiles + 7) / 8, kThreads>>>(tiles, ctl,
                                                                  Stash{off, val, slots}, hits, c1);
              }));
  std::printf("read-back of Ctl (copy + stream sync): %.2f us\n", time_us([&] {
                CK(cudaMemcpyAsync(host, ctl, sizeof(Ctl), cudaMemcpyDeviceToHost, 0));
                CK(cudaStreamSynchronize(0));
              }));
  return 0;
}

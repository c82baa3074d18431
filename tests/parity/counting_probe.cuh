#pragma once

// The host side of the parity tests' counting probes (half_convert_probe.cu, fast_ieee_probe.cu):
// a counts struct in device memory, set from `init`, handed to `launch`, and copied back.

#include <cuda_runtime.h>

#include <string>

namespace terse::parity {

// false with the CUDA error in `error` when a call fails (`out` is then left as it was).
template <typename Counts, typename Launch>
bool run_counting_probe(const Counts& init, Counts& out, std::string& error, Launch launch) {
  Counts* dev = nullptr;
  cudaError_t err = cudaMalloc(&dev, sizeof(Counts));
  if (err == cudaSuccess) err = cudaMemcpy(dev, &init, sizeof(Counts), cudaMemcpyHostToDevice);
  if (err == cudaSuccess) {
    launch(dev);
    err = cudaGetLastError();
  }
  if (err == cudaSuccess) err = cudaMemcpy(&out, dev, sizeof(Counts), cudaMemcpyDeviceToHost);
  cudaFree(dev);
  if (err != cudaSuccess) error = cudaGetErrorString(err);
  return err == cudaSuccess;
}

}  // namespace terse::parity

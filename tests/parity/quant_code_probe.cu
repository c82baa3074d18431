// gpu_map_codes (quant_code_probe.h): built with the flags of the library's kernels.
#include <cuda_runtime.h>

#include "quant_code_probe.h"
#include "terse/kernels/quant_code.h"

namespace terse::parity {
namespace {

__global__ void map_codes_kernel(const CudaQuantMap* __restrict__ map, const float* __restrict__ x,
                                 float scale, int64_t n, uint8_t* __restrict__ out) {
  __shared__ float mid[256];
  __shared__ uint8_t base[CudaQuantMap::kBaseBytes];
  mid[threadIdx.x] = map->mid[threadIdx.x];
  for (unsigned b = threadIdx.x; b < CudaQuantMap::kBaseBytes; b += 256) base[b] = map->base[b];
  __syncthreads();
  const int64_t i = int64_t{blockIdx.x} * 256 + threadIdx.x;
  if (i < n) {
    out[i] =
        bucket_map_code(base, mid, map->tree, x[i] * scale, map->is_signed != 0, map->zero_code);
  }
}

}  // namespace

bool gpu_map_codes(const CudaQuantMap& map, const std::vector<float>& x, float scale,
                   std::vector<uint8_t>& out, std::string& error) {
  const auto n = static_cast<int64_t>(x.size());
  out.assign(x.size(), 0);
  CudaQuantMap* dmap = nullptr;
  float* dx = nullptr;
  uint8_t* dout = nullptr;
  cudaError_t err = cudaMalloc(&dmap, sizeof(CudaQuantMap));
  if (err == cudaSuccess) err = cudaMalloc(&dx, x.size() * sizeof(float) + 1);
  if (err == cudaSuccess) err = cudaMalloc(&dout, x.size() + 1);
  if (err == cudaSuccess) {
    err = cudaMemcpy(dmap, &map, sizeof(CudaQuantMap), cudaMemcpyHostToDevice);
  }
  if (err == cudaSuccess) {
    err = cudaMemcpy(dx, x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice);
  }
  if (err == cudaSuccess && n > 0) {
    map_codes_kernel<<<static_cast<unsigned>((n + 255) / 256), 256>>>(dmap, dx, scale, n, dout);
    err = cudaGetLastError();
  }
  if (err == cudaSuccess) err = cudaMemcpy(out.data(), dout, x.size(), cudaMemcpyDeviceToHost);
  cudaFree(dmap);
  cudaFree(dx);
  cudaFree(dout);
  if (err != cudaSuccess) error = cudaGetErrorString(err);
  return err == cudaSuccess;
}

}  // namespace terse::parity

// Muon's step on CUDA tensors for transformer-sized matrices (terse/optim/cuda_newton_schulz.h):
// per shape and iteration precision (ns_bf16 true: bf16 products on tensor cores, the default;
// false: f32 products, no TF32),
//   step ms       one optimizer step of one matrix (momentum, Newton-Schulz, update)
//   ns ms         CudaNewtonSchulz::run alone (norm, ns_steps iterations, their bf16 roundings)
//   ns TFLOP/s    the iteration's product flops over `ns ms`: per iteration, for an m x n matrix
//                 (m <= n): A = X X^T 2 m^2 n, (c A) A 2 m^3, B X 2 m^2 n
//   gemm TFLOP/s  one cuBLAS product of the iteration's largest shape (B X: m x m by m x n), in
//                 the same types, alone: what cuBLAS reaches on this shape, to compare the
//                 iteration with (and both with the GPU's peak)
//   cuda_muon_bench [--shapes 4096x4096,4096x11008,11008x4096] [--ns-steps 5] [--reps 10]
//                   [--json FILE]
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cuda_timing.h"
#include "terse/kernels/cuda_info.h"
#include "terse/optim/cuda_newton_schulz.h"
#include "terse/optim/optimizer.h"

namespace {

using namespace terse;
using bench::cuda_median_ms;
using bench::cuda_ok;
using bench::split_list;

void cublas_ok(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "cuda_muon_bench: %s: %s\n", what, cublasGetStatusString(s));
    std::exit(1);
  }
}

float* device_filled(size_t n, float scale, uint64_t seed) {
  std::vector<float> h(n);
  uint64_t x = seed;
  for (float& v : h) {  // a small LCG: the values only need to be varied
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    v = scale * (static_cast<float>(x >> 40) / 16777216.0f * 2 - 1);
  }
  float* d = nullptr;
  cuda_ok(cudaMalloc(&d, n * sizeof(float)), "cudaMalloc");
  cuda_ok(cudaMemcpy(d, h.data(), n * sizeof(float), cudaMemcpyHostToDevice), "fill");
  return d;
}

// One product C (m x n) = B (m x m) X (m x n) in the iteration's types, alone.
double gemm_ms(cublasHandle_t h, int64_t m, int64_t n, bool bf16, int reps) {
  const size_t in = bf16 ? 2 : 4;
  void *b = nullptr, *x = nullptr, *c = nullptr;
  cuda_ok(cudaMalloc(&b, static_cast<size_t>(m * m) * in), "cudaMalloc");
  cuda_ok(cudaMalloc(&x, static_cast<size_t>(m * n) * in), "cudaMalloc");
  cuda_ok(cudaMalloc(&c, static_cast<size_t>(m * n) * 4), "cudaMalloc");
  cuda_ok(cudaMemset(b, 0, static_cast<size_t>(m * m) * in), "memset");
  cuda_ok(cudaMemset(x, 0, static_cast<size_t>(m * n) * in), "memset");
  const cudaDataType t = bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const float one = 1, zero = 0;
  const auto M = static_cast<int>(m), N = static_cast<int>(n);
  const double ms = cuda_median_ms(reps, [&] {
    cublas_ok(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, M, N, M, &one, b, t, M, x, t, M, &zero, c,
                           CUDA_R_32F, M, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
              "cublasGemmEx");
  });
  cudaFree(b);
  cudaFree(x);
  cudaFree(c);
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  std::string shapes = "4096x4096,4096x11008,11008x4096", json;
  int reps = 10, ns_steps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--shapes") {
      shapes = v;
    } else if (a == "--reps") {
      reps = std::stoi(v);
    } else if (a == "--ns-steps") {
      ns_steps = std::stoi(v);
    } else if (a == "--json") {
      json = v;
    } else {
      std::fprintf(stderr, "cuda_muon_bench: unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  const CudaInfo info = CudaInfo::query();
  if (info.devices.empty()) {
    std::fprintf(stderr, "cuda_muon_bench: %s\n", info.status.c_str());
    return 1;
  }
  cublasHandle_t handle = nullptr;
  cublas_ok(cublasCreate(&handle), "cublasCreate");
  std::printf("%s; Muon, %d Newton-Schulz steps, lr 0.02, momentum 0.95, Nesterov\n",
              info.devices[0].name.c_str(), ns_steps);
  std::printf("%-12s %-5s %10s %10s %11s %13s\n", "shape", "iter", "step ms", "ns ms", "ns TFLOP/s",
              "gemm TFLOP/s");
  nlohmann::json out = {{"benchmark", "cuda_muon"},
                        {"device", info.devices[0].name},
                        {"ns_steps", ns_steps},
                        {"reps", reps},
                        {"rows", nlohmann::json::array()}};
  for (const std::string& s : split_list(shapes)) {
    const size_t xpos = s.find('x');
    if (xpos == std::string::npos) {
      std::fprintf(stderr, "cuda_muon_bench: shape %s is not ROWSxCOLS\n", s.c_str());
      return 2;
    }
    const int64_t rows = std::stoll(s.substr(0, xpos)), cols = std::stoll(s.substr(xpos + 1));
    const int64_t n = rows * cols, m = std::min(rows, cols), k = std::max(rows, cols);
    const double flops =
        static_cast<double>(ns_steps) *
        (4.0 * static_cast<double>(m) * static_cast<double>(m) * static_cast<double>(k) +
         2.0 * static_cast<double>(m) * static_cast<double>(m) * static_cast<double>(m));
    float* p = device_filled(static_cast<size_t>(n), 0.02f, 1);
    float* g = device_filled(static_cast<size_t>(n), 0.01f, 2);
    float* u = device_filled(static_cast<size_t>(n), 0.01f, 3);
    for (bool bf16 : {true, false}) {
      Param param;
      param.value = TensorView(p, n, DType::kF32, Device::cuda(0));
      param.grad = TensorView(g, n, DType::kF32, Device::cuda(0));
      param.shape = {rows, cols};
      auto opt = make_optimizer(std::string("muon:lr=0.02,ns_steps=") + std::to_string(ns_steps) +
                                    ",ns_bf16=" + (bf16 ? "true" : "false"),
                                {param});
      const double step_ms = cuda_median_ms(reps, [&] { opt->step(); });
      CudaNewtonSchulz ns(0);
      NewtonSchulzOptions o;
      o.steps = ns_steps;
      o.bf16 = bf16;
      // In place on u: after the first run its values are orthogonalised ones, which take the
      // same time.
      const double ns_ms = cuda_median_ms(reps, [&] { ns.run(u, 1, rows, cols, o); });
      const double g_ms = gemm_ms(handle, m, k, bf16, reps);
      const double ns_tflops = flops / (ns_ms * 1e9);
      const double gemm_tflops = 2.0 * static_cast<double>(m) * static_cast<double>(m) *
                                 static_cast<double>(k) / (g_ms * 1e9);
      std::printf("%-12s %-5s %10.3f %10.3f %11.1f %13.1f\n", s.c_str(), bf16 ? "bf16" : "f32",
                  step_ms, ns_ms, ns_tflops, gemm_tflops);
      out["rows"].push_back({{"shape", s},
                             {"iteration", bf16 ? "bf16" : "f32"},
                             {"step_ms", step_ms},
                             {"ns_ms", ns_ms},
                             {"ns_tflops", ns_tflops},
                             {"gemm_ms", g_ms},
                             {"gemm_tflops", gemm_tflops},
                             {"ns_workspace_bytes", ns.workspace_bytes()}});
    }
    cudaFree(p);
    cudaFree(g);
    cudaFree(u);
  }
  cublasDestroy(handle);
  if (!json.empty()) std::ofstream(json) << out.dump(1) << "\n";
  return 0;
}

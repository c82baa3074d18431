// PowerSGD on the GPU: one compress + decompress of a gradient matrix (the local passes of a
// compressed step with error feedback and warm start, one rank, no communication: Q from the
// last step, Gram-Schmidt of Q, P = M Q + e Q, the finite check of P, Gram-Schmidt of P,
// Q = M^T P + e^T P, then M <- P Q^T and e <- M + e - P Q^T in one pass, Q kept), each pass
// alone, and PowerSgd::run on CUDA views with a one-rank local communicator (adds the flag and
// verdict read-backs, the host round trips of P and Q and the final wait). Against a dense f32
// copy of the gradient timed in the same run (the memory-bound reference): "copy %" is the copy's
// time over the row's. The passes move at least 8 n m floats (M and e read by each product and by
// the decompression, both written once) against the copy's 2 n m, so 25 % is the bound.
//   cuda_powersgd_bench [--shapes 4096x4096,1024x9216] [--ranks 1,4,16] [--reps 20] [--json F]
#include <cuda_runtime.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cuda_timing.h"
#include "terse/comm/algorithms/power_sgd.h"
#include "terse/comm/local_communicator.h"
#include "terse/core/philox.h"
#include "terse/kernels/cuda_info.h"
#include "terse/kernels/cuda_power_sgd.h"

namespace {

using namespace terse;
using bench::cuda_median_ms;
using bench::cuda_ok;
using bench::split_list;

constexpr int kDevice = 0;

float* device_floats(size_t count, uint64_t seed, float scale) {
  std::vector<float> host(count);
  PhiloxStream rng(seed, 3);
  for (float& v : host) v = scale * (2.0f * rng.uniform() - 1.0f);
  float* p = nullptr;
  cuda_ok(cudaMalloc(&p, count * sizeof(float)), "cudaMalloc");
  cuda_ok(cudaMemcpy(p, host.data(), count * sizeof(float), cudaMemcpyHostToDevice), "upload");
  return p;
}

struct Row {
  std::string shape;
  int64_t rank;
  std::string op;
  double ms;
};

}  // namespace

int main(int argc, char** argv) {
  std::string shapes = "4096x4096,1024x9216", ranks = "1,4,16", json;
  int reps = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--shapes") {
      shapes = v;
    } else if (a == "--ranks") {
      ranks = v;
    } else if (a == "--reps") {
      reps = std::stoi(v);
    } else if (a == "--json") {
      json = v;
    } else {
      std::fprintf(stderr, "cuda_powersgd_bench: unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  const CudaInfo info = CudaInfo::query();
  if (info.devices.empty()) {
    std::fprintf(stderr, "cuda_powersgd_bench: %s\n", info.status.c_str());
    return 1;
  }
  cuda_ok(cudaSetDevice(kDevice), "cudaSetDevice");
  std::printf(
      "%s, %.1f GiB; PowerSGD compress + decompress, error feedback and warm start, 1 rank\n",
      info.devices[0].name.c_str(), info.devices[0].total_memory_bytes / 1073741824.0);
  std::printf("%-11s %5s %-14s %10s %8s\n", "shape", "rank", "op", "ms", "copy %");
  nlohmann::json result = {{"benchmark", "cuda_powersgd"},
                           {"device", info.devices[0].name},
                           {"reps", reps},
                           {"rows", nlohmann::json::array()}};
  auto comms = make_local_communicators(1);
  for (const std::string& shape : split_list(shapes)) {
    const size_t x = shape.find('x');
    if (x == std::string::npos) {
      std::fprintf(stderr, "cuda_powersgd_bench: bad shape %s (want ROWSxCOLS)\n", shape.c_str());
      return 2;
    }
    const int64_t rows = std::stoll(shape.substr(0, x)), cols = std::stoll(shape.substr(x + 1));
    const auto numel = static_cast<size_t>(rows * cols);
    // Gradient-like values; e smaller, as a residual is.
    float* m = device_floats(numel, 1, 0x1p-10f);
    float* e = device_floats(numel, 2, 0x1p-12f);
    float* copy_dst = nullptr;
    cuda_ok(cudaMalloc(&copy_dst, numel * sizeof(float)), "cudaMalloc");
    const double copy_ms = cuda_median_ms(reps, [&] {
      cuda_ok(cudaMemcpyAsync(copy_dst, m, numel * sizeof(float), cudaMemcpyDeviceToDevice),
              "copy");
    });
    std::printf("%-11s %5s %-14s %10.3f %7.1f%%\n", shape.c_str(), "-", "f32 copy", copy_ms, 100.0);
    result["rows"].push_back({{"shape", shape}, {"op", "f32_copy"}, {"ms", copy_ms}});
    for (const std::string& rs : split_list(ranks)) {
      const int64_t r = std::stoll(rs);
      float* q_kept = device_floats(static_cast<size_t>(cols * r), 3, 1.0f);
      float* q = device_floats(static_cast<size_t>(cols * r), 4, 1.0f);
      float* p = device_floats(static_cast<size_t>(rows * r), 5, 1.0f);
      uint32_t* flags = nullptr;
      cuda_ok(cudaMalloc(&flags, 4 * sizeof(uint32_t)), "cudaMalloc");
      cuda_ok(cudaMemset(flags, 0, 4 * sizeof(uint32_t)), "cudaMemset");
      const size_t qbytes = static_cast<size_t>(cols * r) * sizeof(float);
      const double eps = 1e-8;
      const auto project = [&] { cuda_power_sgd_project(kDevice, m, e, rows, cols, q, r, p); };
      const auto orthogonalize_p = [&] {
        cuda_power_sgd_orthogonalize(kDevice, {{p, rows, r}}, eps);
      };
      const auto back_project = [&] {
        cuda_power_sgd_back_project(kDevice, m, e, rows, cols, p, r, q);
      };
      const auto decompress = [&] {
        cuda_power_sgd_decompress(kDevice, m, e, true, rows, cols, p, q, r, flags + 1);
      };
      // One step's passes. M + e stays what it was (M <- A, e <- M + e - A), so repeats are
      // alike.
      const auto step = [&] {
        cuda_ok(cudaMemcpyAsync(q, q_kept, qbytes, cudaMemcpyDeviceToDevice), "copy of Q");
        cuda_power_sgd_orthogonalize(kDevice, {{q, cols, r}}, eps);
        project();
        cuda_power_sgd_flag_nonfinite(kDevice, p, rows * r, flags);
        orthogonalize_p();
        back_project();
        decompress();
        cuda_ok(cudaMemcpyAsync(q_kept, q, qbytes, cudaMemcpyDeviceToDevice), "copy of Q");
        cuda_power_sgd_flag_zero_column(kDevice, q_kept, cols, r, flags + 2);
      };
      // PowerSgd itself on views of the same buffers (its own Q and e, on the GPU).
      PowerSgd::Options opt;
      opt.rank = static_cast<int>(r);
      opt.start_iter = 0;
      PowerSgd algo(*comms[0], opt);
      const std::vector<MatrixView> views = {{m, rows, cols, Device::cuda(kDevice)}};
      const auto run = [&] { algo.run(views, 1); };
      const std::vector<std::pair<std::string, std::function<void()>>> ops = {
          {"step", step},
          {"project", project},
          {"orthogonalize", orthogonalize_p},
          {"back_project", back_project},
          {"decompress", decompress},
          {"PowerSgd::run", run}};
      for (const auto& [name, fn] : ops) {
        const double ms = cuda_median_ms(reps, fn);
        std::printf("%-11s %5lld %-14s %10.3f %7.1f%%\n", shape.c_str(), static_cast<long long>(r),
                    name.c_str(), ms, 100.0 * copy_ms / ms);
        result["rows"].push_back({{"shape", shape},
                                  {"rank", r},
                                  {"op", name},
                                  {"ms", ms},
                                  {"copy_fraction", copy_ms / ms}});
      }
      cudaFree(q_kept);
      cudaFree(q);
      cudaFree(p);
      cudaFree(flags);
    }
    cudaFree(m);
    cudaFree(e);
    cudaFree(copy_dst);
  }
  if (!json.empty()) std::ofstream(json) << result.dump(1) << "\n";
  return 0;
}

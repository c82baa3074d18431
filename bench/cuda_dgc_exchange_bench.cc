// DGC's gradient exchange in the data-parallel engine with CUDA gradients, on its two paths, at
// ResNet-50's gradient size: (a) on the GPU (DgcGpuMemory: correction, selection and masking
// there, only the pairs to the host, the scatter-add back on the GPU) and (b) on the host mirror
// (every bucket copied to the host, DgcMemory::step there, the result copied back), as the
// trainer picks them (one rank per GPU: (a); ranks sharing a GPU: (b)). One rank, so the time is
// the exchange's own (no peer to wait for): DataParallel::finish() from marked buckets to
// averaged gradients on the GPU. The same selection and bytes on both paths.
//   cuda_dgc_exchange_bench [--numel 25600000] [--tensors 8] [--density 0.001] [--reps 10]
//                           [--json FILE]
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cuda_timing.h"
#include "terse/comm/local_communicator.h"
#include "terse/core/philox.h"
#include "terse/kernels/cuda_buffer.h"
#include "terse/kernels/cuda_info.h"
#include "terse/train/data_parallel.h"
#include "terse/train/gradient_compression.h"

namespace {

using namespace terse;
using bench::cuda_ok;

struct Engine {
  std::vector<CudaBuffer> values;
  std::vector<Param> params;
  std::unique_ptr<DataParallel> dp;
};

Engine make_engine(Communicator& comm, const std::vector<int64_t>& sizes, const std::string& spec,
                   bool on_gpu) {
  Engine e;
  for (size_t t = 0; t < sizes.size(); ++t) {
    e.values.emplace_back(0, static_cast<size_t>(sizes[t]) * sizeof(float));
    e.params.push_back(
        Param{TensorView(e.values.back().data(), sizes[t], DType::kF32, Device::cuda(0)),
              TensorView{},
              {sizes[t] / 64, 64},
              "w" + std::to_string(t)});
  }
  e.dp = std::make_unique<DataParallel>(comm, e.params, 25.0);
  CompressionOptions o;
  o.compress = spec;
  o.momentum = 0.9;
  e.dp->set_compression(
      make_gradient_compression(comm, on_gpu ? e.dp->params() : e.dp->exchange_params(), o));
  return e;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t numel = 25600000;
  int tensors = 8, reps = 10;
  double density = 0.001;
  std::string json;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--numel") {
      numel = std::stoll(v);
    } else if (a == "--tensors") {
      tensors = std::stoi(v);
    } else if (a == "--density") {
      density = std::stod(v);
    } else if (a == "--reps") {
      reps = std::stoi(v);
    } else if (a == "--json") {
      json = v;
    } else {
      std::fprintf(stderr, "cuda_dgc_exchange_bench: unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  const CudaInfo info = CudaInfo::query();
  if (info.devices.empty()) {
    std::fprintf(stderr, "cuda_dgc_exchange_bench: no CUDA device (%s)\n", info.status.c_str());
    return 1;
  }
  // Equal matrices of 64 columns (whole multiples of 64 elements), as many as asked.
  std::vector<int64_t> sizes(static_cast<size_t>(tensors), (numel / tensors) / 64 * 64);
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  std::vector<float> host(static_cast<size_t>(total));
  PhiloxStream rng(11, 0);
  for (float& x : host) x = rng.uniform() - 0.5f;
  float* source = nullptr;
  cuda_ok(cudaMalloc(&source, host.size() * sizeof(float)), "cudaMalloc");
  cuda_ok(cudaMemcpy(source, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice),
          "upload");
  const std::string spec = "dgc:density=" + std::to_string(density);
  auto comms = make_local_communicators(1);
  nlohmann::json out = {{"device", info.devices[0].name},
                        {"numel", total},
                        {"tensors", tensors},
                        {"density", density},
                        {"reps", reps}};
  std::printf("%s; %lld floats in %d tensors, %s\n", info.devices[0].name.c_str(),
              static_cast<long long>(total), tensors, spec.c_str());
  for (const bool on_gpu : {true, false}) {
    Engine e = make_engine(*comms[0], sizes, spec, on_gpu);
    // A fresh gradient each step, copied on the GPU from a source (it stands for backward's
    // copies into the buckets and is timed alone below, to subtract).
    const auto refill = [&] {
      int64_t offset = 0;
      for (size_t t = 0; t < sizes.size(); ++t) {
        cuda_ok(cudaMemcpyAsync(e.dp->params()[t].grad.data, source + offset,
                                static_cast<size_t>(sizes[t]) * sizeof(float),
                                cudaMemcpyDeviceToDevice, cudaStreamLegacy),
                "refill");
        offset += sizes[t];
      }
    };
    const double ms = bench::wall_median_ms(reps, [&] {
      refill();
      for (size_t t = sizes.size(); t-- > 0;) e.dp->mark_ready(t);
      e.dp->finish();
    });
    const double upload_ms = bench::wall_median_ms(reps, refill);
    const char* name = on_gpu ? "gpu" : "host_mirror";
    std::printf("%-12s exchange %8.3f ms (step %8.3f ms - refill %7.3f ms)\n", name, ms - upload_ms,
                ms, upload_ms);
    out[name] = {{"exchange_ms", ms - upload_ms}, {"step_ms", ms}, {"refill_ms", upload_ms}};
  }
  const double ratio =
      out["host_mirror"]["exchange_ms"].get<double>() / out["gpu"]["exchange_ms"].get<double>();
  std::printf("host mirror / gpu: %.1fx\n", ratio);
  out["host_over_gpu"] = ratio;
  if (!json.empty()) std::ofstream(json) << out.dump(1) << "\n";
  cudaFree(source);
  return 0;
}

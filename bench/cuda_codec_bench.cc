// CUDA compression kernels: each encode / decode over `--numel` f32 elements (default 2^26), in
// GB/s of its minimal traffic (the f32 tensor read or written once, the body written or read
// once, plus the tensor read again when decode accumulates), against cudaMemcpy device to device
// of the same f32 tensor (read + write counted), timed in the same run. Each call returns when
// its result is ready (the encodes read their reductions back), so the times include those
// round trips.
//   cuda_codec_bench [--numel 67108864] [--reps 20] [--ops onebit,sign,...] [--json FILE]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cuda_timing.h"
#include "terse/core/philox.h"
#include "terse/kernels/cuda_cast_codec.h"
#include "terse/kernels/cuda_info.h"
#include "terse/kernels/cuda_quant_codec.h"
#include "terse/kernels/cuda_rand_k.h"
#include "terse/kernels/cuda_scatter_add.h"
#include "terse/kernels/cuda_sign_codec.h"

namespace {

using namespace terse;
using bench::cuda_median_ms;
using bench::cuda_ok;
using bench::split_list;

template <typename T>
T* device_alloc(size_t count) {
  T* p = nullptr;
  cuda_ok(cudaMalloc(&p, count * sizeof(T)), "cudaMalloc");
  return p;
}

struct Row {
  std::string op;
  double bytes;  // minimal traffic of one call
  std::function<void()> run;
};

}  // namespace

int main(int argc, char** argv) {
  int64_t n = int64_t{1} << 26;
  int reps = 20;
  std::string ops = "onebit,sign,qsgd,terngrad,fp16,bf16,randk,scatter_add", json;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--numel") {
      n = std::stoll(v);
    } else if (a == "--reps") {
      reps = std::stoi(v);
    } else if (a == "--ops") {
      ops = v;
    } else if (a == "--json") {
      json = v;
    } else {
      std::fprintf(stderr, "cuda_codec_bench: unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  const CudaInfo info = CudaInfo::query();
  if (info.devices.empty()) {
    std::fprintf(stderr, "cuda_codec_bench: %s\n", info.status.c_str());
    return 1;
  }
  const auto un = static_cast<size_t>(n);
  const double f32_bytes = 4.0 * static_cast<double>(n);
  // Gradient-like values: uniform in [-1, 1) times 2^-10.
  std::vector<float> host(un);
  PhiloxStream rng(1, 2);
  for (float& v : host) v = (2.0f * rng.uniform() - 1.0f) * 0x1p-10f;
  float* x = device_alloc<float>(un);
  float* out = device_alloc<float>(un);
  float* copy_dst = device_alloc<float>(un);
  cuda_ok(cudaMemcpy(x, host.data(), un * sizeof(float), cudaMemcpyHostToDevice), "upload");
  cuda_ok(cudaMemset(out, 0, un * sizeof(float)), "memset");
  const size_t body_cap = std::max(cuda_qsgd_body_bytes(n, 32767), cuda_cast_body_bytes(n)) + 64;
  auto* body = device_alloc<uint8_t>(body_cap);

  const double copy_ms = cuda_median_ms(reps, [&] {
    cuda_ok(cudaMemcpyAsync(copy_dst, x, un * sizeof(float), cudaMemcpyDeviceToDevice), "copy");
  });
  const double copy_gbps = 2.0 * f32_bytes / (copy_ms * 1e6);

  // Rand-k / scatter-add inputs: k = 1% of n.
  const int64_t k = std::max<int64_t>(1, n / 100);
  const int kLists = 4;
  auto* idx = device_alloc<int64_t>(static_cast<size_t>(k) * kLists);
  auto* vals = device_alloc<float>(static_cast<size_t>(k) * kLists);
  std::vector<CudaSparseList> lists;
  if (ops.find("scatter_add") != std::string::npos) {
    for (int r = 0; r < kLists; ++r) {
      cuda_rand_k_indices(n, k, 100 + r, idx + r * k);
      cuda_ok(cudaMemcpy(vals + r * k, x, static_cast<size_t>(k) * sizeof(float),
                         cudaMemcpyDeviceToDevice),
              "values");
      lists.push_back({idx + r * k, vals + r * k, k});
    }
  }

  std::vector<Row> rows;
  auto add_pair = [&](const std::string& name, size_t body_bytes, const std::function<void()>& enc,
                      const std::function<void()>& dec, const std::function<void()>& dec_acc) {
    rows.push_back({name + "_encode", f32_bytes + static_cast<double>(body_bytes), enc});
    rows.push_back({name + "_decode", f32_bytes + static_cast<double>(body_bytes), dec});
    rows.push_back(
        {name + "_decode_acc", 2 * f32_bytes + static_cast<double>(body_bytes), dec_acc});
  };
  for (const std::string& op : split_list(ops)) {
    if (op == "onebit") {
      const size_t bb = cuda_onebit_body_bytes(n);
      add_pair(
          op, bb, [&, bb] { cuda_onebit_encode(x, n, body, bb); },
          [&, bb] { cuda_onebit_decode(body, bb, out, n, false); },
          [&, bb] { cuda_onebit_decode(body, bb, out, n, true); });
    } else if (op == "sign") {
      const size_t bb = cuda_scaled_sign_body_bytes(n);
      add_pair(
          op, bb, [&, bb] { cuda_scaled_sign_encode(x, n, body, bb); },
          [&, bb] { cuda_scaled_sign_decode(body, bb, out, n, false); },
          [&, bb] { cuda_scaled_sign_decode(body, bb, out, n, true); });
    } else if (op == "qsgd") {
      const size_t bb = cuda_qsgd_body_bytes(n, 127);
      add_pair(
          op, bb, [&, bb] { cuda_qsgd_encode(x, n, 127, 42, body, bb); },
          [&, bb] { cuda_qsgd_decode(body, bb, 127, out, n, false); },
          [&, bb] { cuda_qsgd_decode(body, bb, 127, out, n, true); });
    } else if (op == "terngrad") {
      const size_t bb = cuda_terngrad_body_bytes(n);
      add_pair(
          op, bb, [&, bb] { cuda_terngrad_encode(x, n, 42, body, bb); },
          [&, bb] { cuda_terngrad_decode(body, bb, out, n, false); },
          [&, bb] { cuda_terngrad_decode(body, bb, out, n, true); });
    } else if (op == "fp16" || op == "bf16") {
      const DType c = op == "fp16" ? DType::kF16 : DType::kBF16;
      const size_t bb = cuda_cast_body_bytes(n);
      add_pair(
          op, bb, [&, bb, c] { cuda_cast_encode(x, n, c, body, bb); },
          [&, bb, c] { cuda_cast_decode(body, bb, c, out, n, false); },
          [&, bb, c] { cuda_cast_decode(body, bb, c, out, n, true); });
    } else if (op == "randk") {
      // Traffic: k gathered values read and written (+ k indices); decode zeroes out.
      const size_t bb = cuda_rand_k_body_bytes(k, DType::kF32);
      const double kb = static_cast<double>(k) * 8.0;
      rows.push_back({"randk_encode", kb + static_cast<double>(bb),
                      [&, bb] { cuda_rand_k_encode(x, n, k, true, DType::kF32, 42, body, bb); }});
      rows.push_back({"randk_decode", f32_bytes + kb + static_cast<double>(bb),
                      [&, bb] { cuda_rand_k_decode(body, bb, k, DType::kF32, out, n, false); }});
    } else if (op == "scatter_add") {
      // Traffic: out zeroed, then per list k (index, value) pairs read and k elements updated.
      const double traffic = f32_bytes + kLists * static_cast<double>(k) * (12.0 + 8.0);
      rows.push_back({"scatter_add_4x1pct", traffic,
                      [&] { cuda_scatter_add(lists.data(), lists.size(), out, n, false); }});
    } else {
      std::fprintf(stderr, "cuda_codec_bench: unknown op %s\n", op.c_str());
      return 2;
    }
  }

  std::printf("%s, %.1f GiB; %lld f32 elements; copy %.3f ms = %.0f GB/s (read + write)\n",
              info.devices[0].name.c_str(), info.devices[0].total_memory_bytes / 1073741824.0,
              static_cast<long long>(n), copy_ms, copy_gbps);
  std::printf("%-22s %10s %10s %8s %8s\n", "op", "MB moved", "ms", "GB/s", "% copy");
  nlohmann::json result = {{"benchmark", "cuda_codec"},
                           {"device", info.devices[0].name},
                           {"numel", n},
                           {"reps", reps},
                           {"copy_ms", copy_ms},
                           {"copy_gbps", copy_gbps},
                           {"rows", nlohmann::json::array()}};
  for (const Row& r : rows) {
    const double ms = cuda_median_ms(reps, r.run);
    const double gbps = r.bytes / (ms * 1e6);
    std::printf("%-22s %10.1f %10.3f %8.0f %7.1f%%\n", r.op.c_str(), r.bytes / 1e6, ms, gbps,
                100.0 * gbps / copy_gbps);
    result["rows"].push_back({{"op", r.op},
                              {"bytes", r.bytes},
                              {"ms", ms},
                              {"gbps", gbps},
                              {"pct_copy", 100.0 * gbps / copy_gbps}});
  }
  if (!json.empty()) std::ofstream(json) << result.dump(1) << "\n";
  cudaFree(x);
  cudaFree(out);
  cudaFree(copy_dst);
  cudaFree(body);
  cudaFree(idx);
  cudaFree(vals);
  return 0;
}

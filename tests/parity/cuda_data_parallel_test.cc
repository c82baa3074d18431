// The data-parallel engine with CUDA parameters against the same engine on the CPU: the
// averaged gradients (dense, through a compressed exchange on the host mirror, and DGC on the
// GPU), the exchange's state, the broadcast and zero_grad give the CPU's bytes. Ranks are threads
// over local communicators (a host backend), so the buckets go through the host mirror; the NCCL
// path is the multirank nccl tests' and the trainer's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gpu_skip.h"
#include "terse/comm/local_communicator.h"
#include "terse/core/error.h"
#include "terse/kernels/cuda_buffer.h"
#include "terse/train/data_parallel.h"
#include "terse/train/gradient_compression.h"

namespace terse {
namespace {

// Sizes with odd tails, one element and more than one bucket at 0.05 MB.
const std::vector<int64_t> kSizes = {1, 4097, 300, 65536 + 3, 12};
// The shapes the parameters report: vectors, except for PowerSGD, which needs matrices to
// compress (the same sizes: 4097 = 17 x 241, 300 = 20 x 15, 65539 is prime, so 1 x 65539).
std::vector<std::vector<int64_t>> g_shapes;

std::vector<int64_t> shape_of(size_t t) {
  return g_shapes.empty() ? std::vector<int64_t>{kSizes[t]} : g_shapes[t];
}

float grad_value(int rank, int step, size_t tensor, int64_t i) {
  return std::sin(0.37f * static_cast<float>(i) + 1.3f * static_cast<float>(rank) +
                  0.11f * static_cast<float>(tensor) + 0.7f * static_cast<float>(step)) *
         (1.0f + static_cast<float>(i % 7));
}

// One rank's parameters, on the host or on GPU 0; values are rank-dependent so a broadcast shows.
struct RankParams {
  bool cuda = false;
  std::vector<std::vector<float>> host;
  std::vector<CudaBuffer> device;
  std::vector<Param> params;

  RankParams(bool on_cuda, int rank) : cuda(on_cuda) {
    for (size_t t = 0; t < kSizes.size(); ++t) {
      std::vector<float> v(static_cast<size_t>(kSizes[t]));
      for (int64_t i = 0; i < kSizes[t]; ++i)
        v[static_cast<size_t>(i)] = grad_value(rank, -1, t, i);
      host.push_back(std::move(v));
    }
    for (size_t t = 0; t < kSizes.size(); ++t) {
      void* data = host[t].data();
      Device dev = Device::cpu();
      if (cuda) {
        device.emplace_back(0, host[t].size() * sizeof(float));
        cuda_copy(device.back().data(), host[t].data(), host[t].size() * sizeof(float));
        data = device.back().data();
        dev = Device::cuda(0);
      }
      params.push_back(Param{TensorView(data, kSizes[t], DType::kF32, dev), TensorView{},
                             shape_of(t), "p" + std::to_string(t)});
    }
  }
};

// The bytes of a view (host or device).
std::vector<float> read(const TensorView& v) {
  std::vector<float> out(static_cast<size_t>(v.numel));
  if (v.device.is_cuda()) {
    cuda_copy(out.data(), v.data, out.size() * sizeof(float));
  } else {
    std::memcpy(out.data(), v.data, out.size() * sizeof(float));
  }
  return out;
}

void write(const TensorView& v, const std::vector<float>& values) {
  if (v.device.is_cuda()) {
    cuda_copy(v.data, values.data(), values.size() * sizeof(float));
  } else {
    std::memcpy(v.data, values.data(), values.size() * sizeof(float));
  }
}

// Per rank, per step, per tensor: the averaged gradient after finish(), and the parameters after
// the broadcast.
struct Outcome {
  std::vector<std::vector<std::vector<std::vector<float>>>> grads;  // [rank][step][tensor]
  std::vector<std::vector<std::vector<float>>> values;              // [rank][tensor]
  std::vector<StateDict> exchange_state;                            // [rank], with compression
};

Outcome run_engine(bool cuda, int world, const std::string& compress, int steps) {
  Outcome out;
  out.grads.resize(static_cast<size_t>(world));
  out.values.resize(static_cast<size_t>(world));
  out.exchange_state.resize(static_cast<size_t>(world));
  run_local_ranks(world, [&](Communicator& comm) {
    const int rank = comm.rank();
    RankParams rp(cuda, rank);
    DataParallel dp(comm, rp.params, 0.05);
    EXPECT_EQ(dp.device(), cuda ? Device::cuda(0) : Device::cpu());
    if (compress != "none") {
      CompressionOptions o;
      o.compress = compress;
      o.feedback = compress.rfind("topk", 0) == 0 ? "ef14" : "none";
      o.momentum = 0.9;
      o.seed = 3;
      // As the trainer: DGC on the GPU's buckets, the others on the host mirror.
      const bool on_gpu = cuda && gradient_compression_on_gpu(o);
      dp.set_compression(
          make_gradient_compression(comm, on_gpu ? dp.params() : dp.exchange_params(), o));
      EXPECT_EQ(dp.compression()->device(), on_gpu ? Device::cuda(0) : Device::cpu());
    }
    dp.broadcast_parameters();
    auto& values = out.values[static_cast<size_t>(rank)];
    for (const Param& p : dp.params()) values.push_back(read(p.value));
    for (int s = 0; s < steps; ++s) {
      // Reverse order, as backward produces them.
      for (size_t t = kSizes.size(); t-- > 0;) {
        const TensorView& g = dp.params()[t].grad;
        EXPECT_EQ(g.device, dp.device());
        std::vector<float> v(static_cast<size_t>(g.numel));
        for (int64_t i = 0; i < g.numel; ++i) v[static_cast<size_t>(i)] = grad_value(rank, s, t, i);
        write(g, v);
        dp.mark_ready(t);
      }
      dp.finish();
      std::vector<std::vector<float>> step_grads;
      for (const Param& p : dp.params()) step_grads.push_back(read(p.grad));
      out.grads[static_cast<size_t>(rank)].push_back(std::move(step_grads));
    }
    if (dp.compression() != nullptr)
      out.exchange_state[static_cast<size_t>(rank)] = dp.compression()->state_dict();
    dp.zero_grad();
    for (const Param& p : dp.params()) {
      for (float x : read(p.grad)) ASSERT_EQ(x, 0.0f);
    }
  });
  return out;
}

void expect_same_bytes(const Outcome& cpu, const Outcome& gpu) {
  ASSERT_EQ(cpu.grads.size(), gpu.grads.size());
  for (size_t r = 0; r < cpu.grads.size(); ++r) {
    ASSERT_EQ(cpu.values[r], gpu.values[r]) << "broadcast, rank " << r;
    EXPECT_TRUE(cpu.exchange_state[r] == gpu.exchange_state[r]) << "exchange state, rank " << r;
    ASSERT_EQ(cpu.grads[r].size(), gpu.grads[r].size());
    for (size_t s = 0; s < cpu.grads[r].size(); ++s) {
      for (size_t t = 0; t < kSizes.size(); ++t) {
        const auto& a = cpu.grads[r][s][t];
        const auto& b = gpu.grads[r][s][t];
        ASSERT_EQ(a.size(), b.size());
        ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)))
            << "rank " << r << " step " << s << " tensor " << t;
      }
    }
  }
}

TEST(CudaDataParallel, DenseAverageEqualsTheCpuEngine) {
  TERSE_SKIP_WITHOUT_GPU();
  for (int world : {1, 2, 3}) {
    SCOPED_TRACE("world " + std::to_string(world));
    expect_same_bytes(run_engine(false, world, "none", 2), run_engine(true, world, "none", 2));
  }
}

TEST(CudaDataParallel, CompressedExchangeRunsOnTheHostMirror) {
  TERSE_SKIP_WITHOUT_GPU();
  // Top-k with EF14 over three steps: the residual carries between steps, so the bytes also
  // show that the mirror and the GPU buckets stay in step.
  expect_same_bytes(run_engine(false, 2, "topk:density=0.1", 3),
                    run_engine(true, 2, "topk:density=0.1", 3));
}

// DGC with its memory and selection on the GPU (DgcGpuMemory): the averaged gradients and U and V
// equal the CPU exchange's over several steps (density 0.01 after a warm-up, f16 values, 3 ranks).
TEST(CudaDataParallel, DgcOnTheGpuEqualsTheCpuExchange) {
  TERSE_SKIP_WITHOUT_GPU();
  for (const char* spec : {"dgc:density=0.01,warmup=paper,warmup_steps=2",
                           "dgc:density=0.05,values=f16,masking=false"}) {
    SCOPED_TRACE(spec);
    expect_same_bytes(run_engine(false, 3, spec, 4), run_engine(true, 3, spec, 4));
  }
}

// exchange=allreduce runs on host gradients: on the GPU it goes through the mirror.
TEST(CudaDataParallel, DgcAllReduceRunsOnTheHostMirror) {
  TERSE_SKIP_WITHOUT_GPU();
  const char* spec = "dgc:density=0.05,exchange=allreduce";
  expect_same_bytes(run_engine(false, 2, spec, 3), run_engine(true, 2, spec, 3));
}

// PowerSGD with its passes on the GPU (cuBLAS products: another summation order than the CPU's):
// close to the CPU exchange, not equal. Dense steps (before start) are bit for bit.
TEST(CudaDataParallel, PowerSgdOnTheGpuStaysCloseToTheCpuExchange) {
  TERSE_SKIP_WITHOUT_GPU();
  g_shapes = {{1}, {17, 241}, {20, 15}, {1, 65539}, {3, 4}};
  const char* spec = "powersgd:rank=2,start=1";
  const Outcome cpu = run_engine(false, 2, spec, 4);
  const Outcome gpu = run_engine(true, 2, spec, 4);
  g_shapes.clear();
  for (size_t r = 0; r < cpu.grads.size(); ++r) {
    for (size_t s = 0; s < cpu.grads[r].size(); ++s) {
      for (size_t t = 0; t < kSizes.size(); ++t) {
        const auto& a = cpu.grads[r][s][t];
        const auto& b = gpu.grads[r][s][t];
        ASSERT_EQ(a.size(), b.size());
        float scale = 0;
        for (float x : a) scale = std::max(scale, std::abs(x));
        for (size_t i = 0; i < a.size(); ++i) {
          if (s == 0) {
            ASSERT_EQ(a[i], b[i]) << "dense step, rank " << r << " tensor " << t << " at " << i;
          } else {
            ASSERT_NEAR(a[i], b[i], 1e-3f * (scale + 1e-30f))
                << "rank " << r << " step " << s << " tensor " << t << " at " << i;
          }
        }
      }
    }
  }
}

TEST(CudaDataParallel, RefusesParametersOnTwoDevices) {
  TERSE_SKIP_WITHOUT_GPU();
  CudaBuffer gpu(0, 4 * sizeof(float));
  std::vector<float> cpu(4, 0.0f);
  std::vector<Param> params = {
      Param{TensorView(gpu.data(), 4, DType::kF32, Device::cuda(0)), TensorView{}, {4}, "gpu"},
      Param{TensorView::of(cpu.data(), 4), TensorView{}, {4}, "cpu"}};
  auto comms = make_local_communicators(1);
  try {
    DataParallel dp(*comms[0], params, 1.0);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("'cpu' (#1) lives on cpu"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace terse

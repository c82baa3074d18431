// OneBitAllReduce on CUDA buffers against the same algorithm on host buffers, bit for bit: the
// outputs and both errors after every call, with 1, 2 and 4 ranks (threads over local
// communicators sharing GPU 0: the sign bytes staged through the host), deferred and immediate
// worker errors, one-call and pairwise exchanges; a peer's bad scale (CorruptData naming it) and
// a non-finite input leave the GPU errors as the CPU's; the state moves between host and GPU
// through state_dict and between calls. The NCCL wire is multirank.one_bit_all_reduce_nccl_*.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "forwarding_communicator.h"
#include "gpu_skip.h"
#include "terse/comm/algorithms/one_bit_all_reduce.h"
#include "terse/comm/local_communicator.h"
#include "terse/core/error.h"
#include "terse/kernels/cuda_buffer.h"

namespace terse {
namespace {

using ::testing::HasSubstr;
using Vec = std::vector<float>;

// Values of every sign and magnitude, with exact zeros and -0 (sgn(-0) = +1 on both).
float input(int rank, int call, int64_t i) {
  if (i % 97 == 3) return 0.0f;
  if (i % 89 == 5) return -0.0f;
  return std::sin(0.0137f * static_cast<float>(i) + 0.71f * static_cast<float>(rank) +
                  1.13f * static_cast<float>(call)) *
         (1.0f + static_cast<float>(i % 5)) * (call % 2 == 0 ? 1.0f : 1e-3f);
}

Vec inputs(int rank, int call, int64_t numel) {
  Vec v(static_cast<size_t>(numel));
  for (int64_t i = 0; i < numel; ++i) v[static_cast<size_t>(i)] = input(rank, call, i);
  return v;
}

bool same_bits(const Vec& a, const Vec& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

// A GPU copy of a host vector, read back with get().
struct GpuVec {
  CudaBuffer buf;
  int64_t n;
  explicit GpuVec(const Vec& v)
      : buf(0, sizeof(float) * (v.empty() ? 1 : v.size())), n(static_cast<int64_t>(v.size())) {
    cuda_copy(buf.data(), v.data(), sizeof(float) * v.size());
  }
  TensorView view() const { return TensorView(buf.data(), n, DType::kF32, Device::cuda(0)); }
  Vec get() const {
    Vec v(static_cast<size_t>(n));
    cuda_copy(v.data(), buf.data(), sizeof(float) * v.size());
    return v;
  }
};

// Both algorithms take the same inputs for `calls` calls; every output and error is compared.
void expect_parity(int world, int64_t numel, OneBitAllReduce::Options o, int calls) {
  run_local_ranks(world, [&](Communicator& c) {
    OneBitAllReduce cpu(c, numel, o), gpu(c, numel, o);
    for (int k = 0; k < calls; ++k) {
      Vec h = inputs(c.rank(), k, numel);
      GpuVec d(h);
      const OneBitAllReduceReport rc = cpu.all_reduce(TensorView::of(h.data(), numel));
      const OneBitAllReduceReport rg = gpu.all_reduce(d.view());
      EXPECT_TRUE(same_bits(d.get(), h)) << "output, call " << k << ", rank " << c.rank();
      EXPECT_TRUE(same_bits(gpu.worker_error(), cpu.worker_error())) << "worker error, call " << k;
      EXPECT_TRUE(same_bits(gpu.server_error(), cpu.server_error())) << "server error, call " << k;
      EXPECT_EQ(rg.payload_bytes, rc.payload_bytes);
      EXPECT_EQ(rg.bytes_sent, rc.bytes_sent);
      EXPECT_EQ(rg.collectives, rc.collectives);
    }
    EXPECT_EQ(gpu.state_device(), Device::cuda(0));
    EXPECT_EQ(cpu.state_device(), Device::cpu());
  });
}

// Three norm blocks and a tail: several blocks on the worker and on the server, and padding.
constexpr int64_t kNumel = 3 * 65536 + 13;

TEST(CudaOneBitAllReduce, BitExactAgainstTheCpuOn1To4Ranks) {
  TERSE_SKIP_WITHOUT_GPU();
  for (int world : {1, 2, 4}) {
    SCOPED_TRACE("world " + std::to_string(world));
    expect_parity(world, kNumel, OneBitAllReduce::Options(), 4);
    expect_parity(world, 5, OneBitAllReduce::Options(), 3);  // one group of padding
  }
}

TEST(CudaOneBitAllReduce, ImmediateWorkerErrorAndPairwiseAreBitExact) {
  TERSE_SKIP_WITHOUT_GPU();
  OneBitAllReduce::Options o;
  o.defer_worker_error = false;
  expect_parity(2, kNumel, o, 3);
  o.pairwise = true;
  o.threads = 2;  // the CPU's thread count changes no bit either
  expect_parity(4, kNumel, o, 3);
}

// Forwards to a real communicator; the n-th one-float f32 all-gather of this rank (the worker
// scale is the first of a call, the server scale the second) sends `bad` instead.
class BadScaleCommunicator : public test_support::ForwardingCommunicator {
 public:
  BadScaleCommunicator(Communicator& inner, int which, float bad)
      : ForwardingCommunicator(inner), which_(which), bad_(bad) {}
  std::unique_ptr<Work> all_gather_async(TensorView in, TensorView out) override {
    if (in.dtype == DType::kF32 && in.numel == 1 && in.device.is_cpu() && ++seen_ == which_) {
      return inner().all_gather_async(TensorView::of(&bad_, 1), out);
    }
    return inner().all_gather_async(in, out);
  }

 private:
  int which_;
  float bad_;
  int seen_ = 0;
};

// Rank 1 corrupts its worker scale (the first gather of a call) or its server scale (the
// second) on the second call, under the CPU and the GPU algorithm alike: both throw CorruptData
// naming rank 1 on every rank, and leave the same outputs and errors.
TEST(CudaOneBitAllReduce, BadPeerScaleIsCorruptDataNamingTheRank) {
  TERSE_SKIP_WITHOUT_GPU();
  for (int which : {1, 2}) {
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), -3.0f}) {
      std::vector<std::string> what_cpu(3), what_gpu(3);
      run_local_ranks(3, [&](Communicator& c) {
        const int at = c.rank() == 1 ? 2 + which : 0;  // the first call's gathers are 1 and 2
        BadScaleCommunicator bad_cpu(c, at, bad), bad_gpu(c, at, bad);
        OneBitAllReduce cpu(bad_cpu, kNumel), gpu(bad_gpu, kNumel);
        const auto r = static_cast<size_t>(c.rank());
        for (int k = 0; k < 2; ++k) {
          Vec h = inputs(c.rank(), k, kNumel);
          GpuVec d(h);
          try {
            cpu.all_reduce(TensorView::of(h.data(), kNumel));
            EXPECT_EQ(k, 0) << "no throw on the CPU, rank " << c.rank();
          } catch (const CorruptData& e) {
            what_cpu[r] = e.what();
          }
          try {
            gpu.all_reduce(d.view());
            EXPECT_EQ(k, 0) << "no throw on the GPU, rank " << c.rank();
          } catch (const CorruptData& e) {
            what_gpu[r] = e.what();
          }
          EXPECT_TRUE(same_bits(d.get(), h)) << "call " << k;
          EXPECT_TRUE(same_bits(gpu.worker_error(), cpu.worker_error())) << "call " << k;
          EXPECT_TRUE(same_bits(gpu.server_error(), cpu.server_error())) << "call " << k;
        }
      });
      const std::string needle =
          which == 1 ? "rank 1 sent worker scale" : "rank 1 sent server scale";
      for (size_t r = 0; r < 3; ++r) {
        EXPECT_THAT(what_gpu[r], HasSubstr(needle)) << "rank " << r;
        EXPECT_EQ(what_gpu[r], what_cpu[r]);
      }
    }
  }
}

// A NaN on one rank: NumericalError on every rank, nothing changed on the GPU either.
TEST(CudaOneBitAllReduce, NonFiniteInputThrowsEverywhereAndChangesNothing) {
  TERSE_SKIP_WITHOUT_GPU();
  run_local_ranks(2, [&](Communicator& c) {
    OneBitAllReduce gpu(c, kNumel);
    Vec h = inputs(c.rank(), 0, kNumel);
    GpuVec d(h);
    gpu.all_reduce(d.view());
    const Vec ew = gpu.worker_error(), es = gpu.server_error();
    Vec bad = inputs(c.rank(), 1, kNumel);
    if (c.rank() == 1) bad[70000] = std::numeric_limits<float>::infinity();
    GpuVec db(bad);
    EXPECT_THROW(gpu.all_reduce(db.view()), NumericalError);
    EXPECT_TRUE(same_bits(db.get(), bad));
    EXPECT_TRUE(same_bits(gpu.worker_error(), ew));
    EXPECT_TRUE(same_bits(gpu.server_error(), es));
  });
}

// The state saved on one device continues on the other, and a call on the other device moves it:
// CPU -> GPU (state_dict), GPU -> CPU (state_dict), and a GPU object called with a host buffer.
TEST(CudaOneBitAllReduce, StateMovesBetweenDevices) {
  TERSE_SKIP_WITHOUT_GPU();
  run_local_ranks(2, [&](Communicator& c) {
    OneBitAllReduce ref(c, kNumel), gpu(c, kNumel), back(c, kNumel);
    Vec h = inputs(c.rank(), 0, kNumel);
    ref.all_reduce(TensorView::of(h.data(), kNumel));
    gpu.load_state_dict(ref.state_dict("x."), "x.");  // loaded on the host, moved by the call
    for (int k = 1; k < 3; ++k) {
      Vec r = inputs(c.rank(), k, kNumel);
      GpuVec d(r);
      ref.all_reduce(TensorView::of(r.data(), kNumel));
      gpu.all_reduce(d.view());
      EXPECT_TRUE(same_bits(d.get(), r)) << "call " << k;
    }
    EXPECT_EQ(gpu.state_device(), Device::cuda(0));
    back.load_state_dict(gpu.state_dict("y."), "y.");
    gpu.load_state_dict(ref.state_dict("z."), "z.");  // into the GPU's memory
    EXPECT_TRUE(same_bits(gpu.worker_error(), ref.worker_error()));
    Vec a = inputs(c.rank(), 3, kNumel), b = a, g = a;
    ref.all_reduce(TensorView::of(a.data(), kNumel));
    back.all_reduce(TensorView::of(b.data(), kNumel));
    gpu.all_reduce(TensorView::of(g.data(), kNumel));  // a host buffer moves it back
    EXPECT_EQ(gpu.state_device(), Device::cpu());
    EXPECT_TRUE(same_bits(b, a));
    EXPECT_TRUE(same_bits(g, a));
    EXPECT_TRUE(same_bits(gpu.server_error(), ref.server_error()));
    gpu.reset_errors();
    for (float e : gpu.worker_error()) ASSERT_EQ(e, 0.0f);
  });
}

TEST(CudaOneBitAllReduce, HostPointerLabelledCudaIsInvalidArgument) {
  TERSE_SKIP_WITHOUT_GPU();
  run_local_ranks(1, [&](Communicator& c) {
    OneBitAllReduce gpu(c, 8);
    Vec h(8, 1.0f);
    try {
      gpu.all_reduce(TensorView(h.data(), 8, DType::kF32, Device::cuda(0)));
      ADD_FAILURE() << "no throw";
    } catch (const InvalidArgument& e) {
      EXPECT_THAT(e.what(), HasSubstr("is not memory of that GPU"));
    }
  });
}

}  // namespace
}  // namespace terse

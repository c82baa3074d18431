// SparseAllGather and SparseAllReduce on CUDA views under mpiexec (docs/collectives.md, "On the
// GPU"): on the MPI communicator (ranks may share a GPU: the pairs are staged through the host)
// and on NCCL (one GPU per rank: the pairs of both move in GPU memory), against the same
// algorithms on host views over MPI, bit for bit; a bad index and host views on NCCL refused on
// every rank. CTest: multirank.sparse_gpu (-n 4, MPI; NCCL skips without 4 GPUs) and
// multirank.sparse_nccl_1 / _2. Every test skips, saying why, without a GPU.

#include <cuda_runtime.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "sparse_test_util.h"
#include "terse/comm/algorithms/sparse_all_gather.h"
#include "terse/comm/algorithms/sparse_all_reduce.h"
#include "terse/comm/communicator.h"
#include "terse/comm/nccl_communicator.h"
#include "terse/core/error.h"
#include "terse/kernels/cuda_buffer.h"

namespace terse {
namespace {

using testing::first_bit_difference;
using ::testing::HasSubstr;
using testing::make_pairs;
using testing::Pairs;

Communicator* g_mpi = nullptr;
Communicator* g_nccl = nullptr;
int g_device = -1;  // this rank's GPU, -1 without one
std::string g_skip_gpu, g_skip_nccl;

#define REQUIRE_GPU() \
  if (g_device < 0) GTEST_SKIP() << g_skip_gpu
#define REQUIRE_NCCL() \
  if (g_nccl == nullptr) GTEST_SKIP() << g_skip_nccl

// One rank's pairs and out in its GPU's memory (out filled with NaN first).
struct DeviceCase {
  DeviceCase(const Pairs& p, int64_t n)
      : count(static_cast<int64_t>(p.indices.size())),
        numel(n),
        idx(g_device, sizeof(int32_t) * (p.indices.size() + 1)),
        val(g_device, sizeof(float) * (p.values.size() + 1)),
        out(g_device, sizeof(float) * static_cast<size_t>(n + 1)) {
    cuda_copy(idx.data(), p.indices.data(), sizeof(int32_t) * p.indices.size());
    cuda_copy(val.data(), p.values.data(), sizeof(float) * p.values.size());
    const std::vector<float> nan(static_cast<size_t>(n), std::nanf(""));
    cuda_copy(out.data(), nan.data(), sizeof(float) * nan.size());
  }
  SparseVector pairs() const {
    return SparseVector{static_cast<const int32_t*>(idx.data()),
                        static_cast<const float*>(val.data()), count, Device::cuda(g_device)};
  }
  TensorView out_view() const {
    return TensorView(out.data(), numel, DType::kF32, Device::cuda(g_device));
  }
  std::vector<float> result() const {
    std::vector<float> h(static_cast<size_t>(numel));
    cuda_copy(h.data(), out.data(), sizeof(float) * h.size());
    return h;
  }
  int64_t count, numel;
  CudaBuffer idx, val, out;
};

// Pattern p: rank r's density kDensity[(r + p) % 4] (no pair, every index, sparse, half).
Pairs pairs_for(int rank, int64_t numel, int pattern, uint64_t salt) {
  static const double kDensity[] = {0.0, 1.0, 0.02, 0.5};
  const double d = kDensity[(rank + pattern) % 4];
  return d == 0.0 ? Pairs{} : make_pairs(rank, numel, d, salt);
}

// SparseAllGather over `gpu_comm` on CUDA views against the CPU over MPI, every pattern.
void gather_matches_cpu(Communicator& gpu_comm, bool allow_fallback) {
  const int me = g_mpi->rank();
  for (const int64_t numel : {int64_t{1}, int64_t{4097}, int64_t{1} << 18}) {
    for (int pattern = 0; pattern < 4; ++pattern) {
      for (const bool average : {false, true}) {
        SparseAllGather::Options opt;
        opt.reduction = average ? SparseReduction::kAverage : SparseReduction::kSum;
        opt.allow_dense_fallback = allow_fallback;
        const Pairs p = pairs_for(me, numel, pattern, 31 + static_cast<uint64_t>(pattern));
        std::vector<float> cpu(static_cast<size_t>(numel));
        const SparseAllGatherReport rc =
            SparseAllGather(*g_mpi, opt).run(p.view(), TensorView::of(cpu.data(), numel));
        const DeviceCase d(p, numel);
        const SparseAllGatherReport rg =
            SparseAllGather(gpu_comm, opt).run(d.pairs(), d.out_view());
        const std::string what = "numel " + std::to_string(numel) + ", pattern " +
                                 std::to_string(pattern) + ", path " + rc.path;
        EXPECT_EQ(first_bit_difference(d.result(), cpu), -1) << what;
        EXPECT_STREQ(rg.path, rc.path) << what;
        EXPECT_EQ(rg.bytes_sent, rc.bytes_sent) << what;
        EXPECT_EQ(rg.bytes_sparse, rc.bytes_sparse) << what;
        EXPECT_EQ(rg.total_count, rc.total_count) << what;
      }
    }
  }
}

// SparseAllReduce over `gpu_comm` on CUDA views against the CPU over MPI, three steps each.
// Pattern 4: values on a grid of 1/4 (many equal |sum|: the budget cuts through ties).
void reduce_matches_cpu(Communicator& gpu_comm) {
  const int me = g_mpi->rank();
  const int64_t numel = 4097;
  for (const auto quota : {SparseAllReduce::Quota::kWaterFill, SparseAllReduce::Quota::kFixed}) {
    for (const int64_t budget : {int64_t{60}, numel}) {
      for (int pattern = 0; pattern < 5; ++pattern) {
        SparseAllReduce::Options opt;
        opt.quota = quota;
        SparseAllReduce on_cpu(*g_mpi, opt), on_gpu(gpu_comm, opt);
        for (int step = 0; step < 3; ++step) {
          const uint64_t salt = 77 + static_cast<uint64_t>(step);
          const Pairs p = pattern == 4 ? make_pairs(me, numel, 0.3, salt, true)
                                       : pairs_for(me, numel, pattern, salt);
          std::vector<float> cpu(static_cast<size_t>(numel));
          const SparseAllReduceReport rc =
              on_cpu.run(p.view(), budget, TensorView::of(cpu.data(), numel));
          const DeviceCase d(p, numel);
          const SparseAllReduceReport rg = on_gpu.run(d.pairs(), budget, d.out_view());
          const std::string what =
              std::string(quota == SparseAllReduce::Quota::kFixed ? "fixed" : "water-fill") +
              ", budget " + std::to_string(budget) + ", pattern " + std::to_string(pattern) +
              ", step " + std::to_string(step);
          EXPECT_EQ(first_bit_difference(d.result(), cpu), -1) << what;
          EXPECT_EQ(rg.kept, rc.kept) << what;
          EXPECT_EQ(rg.selected, rc.selected) << what;
          EXPECT_EQ(rg.bytes_sent, rc.bytes_sent) << what;
          EXPECT_EQ(on_gpu.boundaries(), on_cpu.boundaries()) << what;
        }
      }
    }
  }
}

TEST(CudaSparseMpi, SparseAllGatherEqualsTheCpu) {
  REQUIRE_GPU();
  // The dense path's all-reduce runs on MPI both ways: the same sums.
  gather_matches_cpu(*g_mpi, true);
  gather_matches_cpu(*g_mpi, false);
}

TEST(CudaSparseMpi, SparseAllReduceEqualsTheCpu) {
  REQUIRE_GPU();
  reduce_matches_cpu(*g_mpi);
}

TEST(CudaSparseNccl, SparseAllGatherEqualsTheCpu) {
  REQUIRE_NCCL();
  // Forced sparse: rank-ordered adds, bit for bit on any backend. The dense path is NCCL's sum:
  // bit for bit only for two ranks or fewer (a sum of two is the same in any order).
  gather_matches_cpu(*g_nccl, false);
  if (g_nccl->size() <= 2) gather_matches_cpu(*g_nccl, true);
}

TEST(CudaSparseNccl, SparseAllReduceEqualsTheCpu) {
  REQUIRE_NCCL();
  reduce_matches_cpu(*g_nccl);
}

TEST(CudaSparseNccl, BadIndexAndHostViewsAreRefusedOnEveryRank) {
  REQUIRE_NCCL();
  const int64_t numel = 100;
  Pairs p = make_pairs(g_mpi->rank(), numel, 0.2, 5);
  if (g_mpi->rank() == 0) {
    p.indices = {3, 2};
    p.values = {1.0f, 1.0f};
  }
  const DeviceCase d(p, numel);
  try {
    SparseAllGather(*g_nccl).run(d.pairs(), d.out_view());
    ADD_FAILURE() << "a bad index on rank 0 was accepted";
  } catch (const CorruptData& e) {
    EXPECT_THAT(e.what(), HasSubstr("rank 0 sent bad pairs: index 2 at position 1"));
  }
  try {
    SparseAllReduce(*g_nccl).run(d.pairs(), 10, d.out_view());
    ADD_FAILURE() << "a bad index on rank 0 was accepted";
  } catch (const CorruptData& e) {
    EXPECT_THAT(e.what(), HasSubstr("rank 0 sent bad pairs: index 2 at position 1"));
  }
  // Host views on a communicator of GPU memory: InvalidArgument on every rank.
  const Pairs good = make_pairs(g_mpi->rank(), numel, 0.2, 5);
  std::vector<float> host_out(static_cast<size_t>(numel));
  try {
    SparseAllGather(*g_nccl).run(good.view(), TensorView::of(host_out.data(), numel));
    ADD_FAILURE() << "host views on NCCL were accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), HasSubstr("moves memory of cuda:"));
  } catch (const CommError& e) {
    EXPECT_THAT(e.what(), HasSubstr("passed invalid arguments"));
  }
}

}  // namespace
}  // namespace terse

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto mpi = terse::make_communicator("mpi");
  terse::g_mpi = mpi.get();
  int visible = 0;
  if (cudaGetDeviceCount(&visible) != cudaSuccess) {
    visible = 0;
    cudaGetLastError();
  }
  const int local = terse::local_rank_count();
  const int local_rank = terse::local_rank() < 0 ? 0 : terse::local_rank();
  int have_gpu = visible > 0 ? 1 : 0;
  mpi->all_reduce(terse::TensorView::of(&have_gpu, 1), terse::ReduceOp::kMin);
  if (have_gpu) {
    terse::g_device = local_rank % visible;  // MPI ranks may share a GPU
    cudaSetDevice(terse::g_device);
  } else {
    terse::g_skip_gpu = "no CUDA device on some rank";
  }
  int can_nccl = have_gpu && visible >= local ? 1 : 0;
  mpi->all_reduce(terse::TensorView::of(&can_nccl, 1), terse::ReduceOp::kMin);
  std::unique_ptr<terse::Communicator> nccl;
  if (can_nccl) {
    nccl = terse::make_nccl_communicator();
    terse::g_nccl = nccl.get();
    terse::g_device = nccl->device().index;
    cudaSetDevice(terse::g_device);
  } else {
    terse::g_skip_nccl = "NCCL needs one GPU per rank: this rank sees " + std::to_string(visible) +
                         " CUDA devices for " + std::to_string(local) +
                         " ranks on its node (or another rank has too few)";
  }
  if (mpi->rank() != 0) GTEST_FLAG_SET(brief, true);
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  mpi->all_reduce(terse::TensorView::of(&failed, 1), terse::ReduceOp::kMax);
  if (mpi->rank() == 0) {
    std::printf("multirank sparse gpu: %d ranks, %s\n", mpi->size(),
                failed ? "FAILED on some rank" : "all passed");
  }
  nccl.reset();
  mpi.reset();
  return failed;
}

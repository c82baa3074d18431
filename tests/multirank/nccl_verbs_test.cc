// Every verb of the NCCL backend on CUDA buffers, every dtype, against a reference each rank
// computes on the host from all ranks' deterministic inputs (exact: integers, and floats that
// are multiples of 1/4, whose sums over a few ranks round in no dtype); the argument checks
// (host views, another device); the stream ordering of Work; a timed-out wait. Run under
// mpiexec -n 1 and -n 2 (CTest: multirank.nccl_1, multirank.nccl_2); every test skips, saying
// why, where there is no GPU or fewer GPUs than ranks on the node.

#include <cuda_runtime.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "comm_test_util.h"
#include "nccl_test_kernels.h"
#include "terse/comm/communicator.h"
#include "terse/comm/nccl_communicator.h"
#include "terse/core/error.h"

namespace terse {
namespace {

using testing::Bytes;
using testing::make_input;
using testing::reference_reduce;

Communicator* g_nccl = nullptr;
std::string g_skip_reason;
bool g_no_gpu_anywhere = false;
// Every rank sees a GPU, but some node runs more ranks than it has GPUs (-n 2 on one GPU).
bool g_too_few_gpus = false;

#define REQUIRE_NCCL() \
  if (g_nccl == nullptr) GTEST_SKIP() << g_skip_reason

const int64_t kSizes[] = {0, 1, 4097, int64_t{1} << 18};

Bytes exact_input(DType dt, int rank, int64_t n, uint64_t salt) {
  return make_input(dt, rank, n, salt, /*exact=*/true);
}

// Device memory holding a copy of host bytes; freed on destruction.
class DeviceBytes {
 public:
  explicit DeviceBytes(const Bytes& host) : size_(host.size()) {
    if (size_ == 0) return;
    EXPECT_EQ(cudaMalloc(&ptr_, size_), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(ptr_, host.data(), size_, cudaMemcpyHostToDevice), cudaSuccess);
  }
  DeviceBytes(size_t size, uint8_t fill) : DeviceBytes(Bytes(size, fill)) {}
  ~DeviceBytes() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;

  uint8_t* data() const { return static_cast<uint8_t*>(ptr_); }
  TensorView view(DType dt) const {
    return TensorView(ptr_, static_cast<int64_t>(size_ / dtype_size(dt)), dt, g_nccl->device());
  }
  // A plain cudaMemcpy: on the legacy default stream, so it is ordered after the collective
  // only if wait() made that stream wait for it.
  Bytes to_host() const {
    Bytes out(size_);
    if (size_ > 0) {
      EXPECT_EQ(cudaMemcpy(out.data(), ptr_, size_, cudaMemcpyDeviceToHost), cudaSuccess);
    }
    return out;
  }

 private:
  size_t size_ = 0;
  void* ptr_ = nullptr;
};

// First differing element, or -1.
int64_t first_difference(const Bytes& a, const Bytes& b, DType dt) {
  if (a.size() != b.size()) return 0;
  const size_t es = dtype_size(dt);
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) return static_cast<int64_t>(i / es);
  }
  return -1;
}

class NcclVerbs : public ::testing::TestWithParam<DType> {
 protected:
  Communicator& c() { return *g_nccl; }
  int rank() { return g_nccl->rank(); }
  int size() { return g_nccl->size(); }
};

TEST_P(NcclVerbs, AllReduce) {
  REQUIRE_NCCL();
  const DType dt = GetParam();
  for (const int64_t n : kSizes) {
    for (const ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
      std::vector<Bytes> all;
      for (int r = 0; r < size(); ++r) all.push_back(exact_input(dt, r, n, 21));
      const Bytes want = reference_reduce(all, dt, n, op);
      DeviceBytes buf(all[static_cast<size_t>(rank())]);
      c().all_reduce(buf.view(dt), op);
      EXPECT_EQ(first_difference(buf.to_host(), want, dt), -1)
          << "all_reduce " << reduce_op_name(op) << " n=" << n << " rank " << rank();
    }
  }
}

TEST_P(NcclVerbs, AllGather) {
  REQUIRE_NCCL();
  const DType dt = GetParam();
  for (const int64_t n : kSizes) {
    Bytes want;
    for (int r = 0; r < size(); ++r) {
      const Bytes b = exact_input(dt, r, n, 22);
      want.insert(want.end(), b.begin(), b.end());
    }
    const Bytes mine = exact_input(dt, rank(), n, 22);
    DeviceBytes in(mine);
    DeviceBytes out(want.size(), 0xAB);
    c().all_gather(in.view(dt), out.view(dt));
    EXPECT_EQ(first_difference(out.to_host(), want, dt), -1) << "all_gather n=" << n;
    // In place: `in` is this rank's block of `out`.
    Bytes staged(want.size(), 0xCD);
    std::copy(mine.begin(), mine.end(), staged.begin() + static_cast<long>(mine.size()) * rank());
    DeviceBytes whole(staged);
    c().all_gather(whole.view(dt).slice(n * rank(), n), whole.view(dt));
    EXPECT_EQ(first_difference(whole.to_host(), want, dt), -1) << "in-place all_gather n=" << n;
  }
}

TEST_P(NcclVerbs, AllGathervWithUnevenCounts) {
  REQUIRE_NCCL();
  const DType dt = GetParam();
  for (const int64_t big : kSizes) {
    // The last rank sends `big`, the others 0-3 elements (rank 0 two, so -n 1 has a count too).
    std::vector<int64_t> counts;
    for (int r = 0; r < size(); ++r) counts.push_back(r == size() - 1 ? big : (r * 3 + 2) % 4);
    Bytes want;
    for (int r = 0; r < size(); ++r) {
      const Bytes b = exact_input(dt, r, counts[static_cast<size_t>(r)], 23);
      want.insert(want.end(), b.begin(), b.end());
    }
    DeviceBytes in(exact_input(dt, rank(), counts[static_cast<size_t>(rank())], 23));
    DeviceBytes out(want.size(), 0xAB);
    c().all_gatherv(in.view(dt), out.view(dt), counts);
    EXPECT_EQ(first_difference(out.to_host(), want, dt), -1) << "all_gatherv big=" << big;
  }
}

TEST_P(NcclVerbs, AllToAll) {
  REQUIRE_NCCL();
  const DType dt = GetParam();
  const int64_t es = static_cast<int64_t>(dtype_size(dt));
  for (const int64_t chunk : kSizes) {
    Bytes want;
    for (int r = 0; r < size(); ++r) {
      const Bytes b = exact_input(dt, r, chunk * size(), 24);
      const auto begin = b.begin() + static_cast<long>(chunk * rank() * es);
      want.insert(want.end(), begin, begin + static_cast<long>(chunk * es));
    }
    const Bytes mine = exact_input(dt, rank(), chunk * size(), 24);
    DeviceBytes in(mine);
    DeviceBytes out(mine.size(), 0xAB);
    c().all_to_all(in.view(dt), out.view(dt));
    EXPECT_EQ(first_difference(out.to_host(), want, dt), -1) << "all_to_all chunk=" << chunk;
    // In place: sent from a staged copy.
    c().all_to_all(in.view(dt), in.view(dt));
    EXPECT_EQ(first_difference(in.to_host(), want, dt), -1) << "in-place all_to_all " << chunk;
  }
}

TEST_P(NcclVerbs, AllToAllvWithUnevenCounts) {
  REQUIRE_NCCL();
  const DType dt = GetParam();
  const int64_t es = static_cast<int64_t>(dtype_size(dt));
  const int p = size();
  for (const int64_t big : kSizes) {
    // Rank s sends (s + 2 d + 1) % 4 elements to rank d, and `big` from the last rank to 0.
    auto count = [&](int s, int d) -> int64_t {
      return s == p - 1 && d == 0 ? big : (s + 2 * d + 1) % 4;
    };
    auto sends_of = [&](int s) {
      std::vector<int64_t> sc;
      for (int d = 0; d < p; ++d) sc.push_back(count(s, d));
      return sc;
    };
    const std::vector<int64_t> send = sends_of(rank());
    std::vector<int64_t> recv;
    for (int s = 0; s < p; ++s) recv.push_back(count(s, rank()));
    Bytes want;
    for (int s = 0; s < p; ++s) {
      const std::vector<int64_t> sc = sends_of(s);
      const Bytes b = exact_input(dt, s, std::accumulate(sc.begin(), sc.end(), int64_t{0}), 25);
      const int64_t off = std::accumulate(sc.begin(), sc.begin() + rank(), int64_t{0});
      const auto begin = b.begin() + static_cast<long>(off * es);
      want.insert(want.end(), begin,
                  begin + static_cast<long>(sc[static_cast<size_t>(rank())] * es));
    }
    DeviceBytes in(
        exact_input(dt, rank(), std::accumulate(send.begin(), send.end(), int64_t{0}), 25));
    DeviceBytes out(want.size(), 0xAB);
    c().all_to_allv(in.view(dt), send, out.view(dt), recv);
    EXPECT_EQ(first_difference(out.to_host(), want, dt), -1) << "all_to_allv big=" << big;
  }
}

TEST_P(NcclVerbs, Broadcast) {
  REQUIRE_NCCL();
  const DType dt = GetParam();
  for (int root = 0; root < size(); ++root) {
    for (const int64_t n : kSizes) {
      const Bytes want = exact_input(dt, root, n, 26);
      DeviceBytes buf(rank() == root ? want : Bytes(want.size(), 0xEE));
      c().broadcast(buf.view(dt), root);
      EXPECT_EQ(first_difference(buf.to_host(), want, dt), -1)
          << "broadcast root=" << root << " n=" << n;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllDTypes, NcclVerbs, ::testing::ValuesIn(testing::all_dtypes()),
                         [](const ::testing::TestParamInfo<DType>& p) {
                           return std::string(dtype_name(p.param));
                         });

TEST(Nccl, BackendDeviceBarrierAndTest) {
  REQUIRE_NCCL();
  EXPECT_STREQ(g_nccl->backend(), "nccl");
  EXPECT_TRUE(g_nccl->device().is_cuda());
  EXPECT_EQ(g_nccl->timeout().count(), 120000) << "CTest sets TERSE_TIMEOUT_S=120";
  int current = -1;
  ASSERT_EQ(cudaGetDevice(&current), cudaSuccess);
  EXPECT_EQ(current, g_nccl->device().index) << "the communicator's device is made current";
  g_nccl->barrier();
  g_nccl->barrier_async()->wait();
  DeviceBytes one(Bytes(sizeof(float), 0));
  const float x = 1.0f;
  ASSERT_EQ(cudaMemcpy(one.data(), &x, sizeof x, cudaMemcpyHostToDevice), cudaSuccess);
  auto w = g_nccl->all_reduce_async(one.view(DType::kF32), ReduceOp::kSum);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!w->test()) ASSERT_LT(std::chrono::steady_clock::now(), deadline);
  EXPECT_TRUE(w->test());
  w->wait();
  float got = 0;
  ASSERT_EQ(cudaMemcpy(&got, one.data(), sizeof got, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(got, static_cast<float>(g_nccl->size()));
}

std::string invalid_argument_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const InvalidArgument& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception type: ") + e.what();
  }
  return "no exception";
}

TEST(Nccl, ViewsNotOnThisGpuAreInvalidArgument) {
  REQUIRE_NCCL();
  std::vector<float> host(8, 1.0f);
  const Device mine = g_nccl->device();
  // Labelled CPU.
  EXPECT_THAT(invalid_argument_message([&] { g_nccl->all_reduce(TensorView::of(host.data(), 8)); }),
              ::testing::HasSubstr("inout is on cpu but the NCCL communicator moves memory of " +
                                   mine.str()));
  // Labelled another GPU (the label is checked before the pointer, so no second GPU needed).
  const Device other = Device::cuda(mine.index + 7);
  EXPECT_THAT(invalid_argument_message(
                  [&] { g_nccl->broadcast(TensorView(host.data(), 8, DType::kF32, other), 0); }),
              ::testing::HasSubstr("inout is on " + other.str() +
                                   " but this rank's NCCL communicator is on " + mine.str()));
  // Labelled this GPU but host memory.
  EXPECT_THAT(invalid_argument_message([&] {
                g_nccl->all_gather(TensorView(host.data(), 1, DType::kF32, mine),
                                   TensorView(host.data() + 1, static_cast<int64_t>(g_nccl->size()),
                                              DType::kF32, mine));
              }),
              ::testing::HasSubstr("points to host memory"));
  // A CPU output of a v-collective.
  DeviceBytes in(Bytes(4, 0));
  EXPECT_THAT(invalid_argument_message([&] {
                std::vector<int64_t> counts(static_cast<size_t>(g_nccl->size()), 1);
                g_nccl->all_gatherv(in.view(DType::kF32),
                                    TensorView::of(host.data(), g_nccl->size()), counts);
              }),
              ::testing::HasSubstr("out is on cpu"));
  // Nothing was enqueued: the communicator still works.
  g_nccl->barrier();
}

// A collective starts after the work already on the legacy default stream (a 200 ms spin, then
// a memset of its input), and after wait() a copy on that stream sees its result.
TEST(Nccl, WorkIsOrderedWithTheDefaultStream) {
  REQUIRE_NCCL();
  const int w = g_nccl->size();
  const int64_t n = int64_t{1} << 22;
  for (const bool poll : {false, true}) {
    DeviceBytes in(static_cast<size_t>(n), 0);
    DeviceBytes out(static_cast<size_t>(n * w), 0);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const uint8_t value = static_cast<uint8_t>(0x11 * (g_nccl->rank() + 1) + (poll ? 1 : 0));
    ASSERT_EQ(testing::spin_then_fill(in.data(), static_cast<size_t>(n), value, 200'000'000,
                                      cudaStreamLegacy),
              cudaSuccess);
    auto work = g_nccl->all_gather_async(in.view(DType::kU8), out.view(DType::kU8));
    if (poll) {
      while (!work->test()) {
      }
    } else {
      work->wait();
    }
    // cudaMemcpyAsync on the default stream, then wait for that stream only.
    Bytes host(static_cast<size_t>(n * w));
    ASSERT_EQ(cudaMemcpyAsync(host.data(), out.data(), host.size(), cudaMemcpyDeviceToHost,
                              cudaStreamLegacy),
              cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(cudaStreamLegacy), cudaSuccess);
    for (int r = 0; r < w; ++r) {
      const uint8_t want = static_cast<uint8_t>(0x11 * (r + 1) + (poll ? 1 : 0));
      const auto base = static_cast<size_t>(r) * static_cast<size_t>(n);
      size_t bad = 0;
      for (size_t i = 0; i < static_cast<size_t>(n); ++i) bad += host[base + i] != want ? 1 : 0;
      EXPECT_EQ(bad, 0u) << "block of rank " << r << (poll ? " (test())" : " (wait())");
    }
  }
}

// One rank: its collective waits behind a 3 s spin on the default stream, so a 300 ms wait
// times out, names the operation, the bytes and the rank, and aborts the communicator; every
// later call on it is CommError. On a separate communicator; NCCL's one-rank collectives are
// copies on its stream, so nothing of NCCL is left running on the device when it is aborted.
TEST(Nccl, TimedOutWaitAbortsTheCommunicator) {
  REQUIRE_NCCL();
  if (g_nccl->size() != 1) GTEST_SKIP() << "needs a world of one rank (mpiexec -n 1)";
  auto comm = make_nccl_communicator();
  comm->set_timeout(std::chrono::milliseconds(300));
  DeviceBytes buf(Bytes(4096 * sizeof(float), 0));
  ASSERT_EQ(testing::spin_then_fill(buf.data(), 0, 0, 3'000'000'000, cudaStreamLegacy),
            cudaSuccess);
  std::string message = "no exception";
  try {
    comm->all_reduce(buf.view(DType::kF32), ReduceOp::kSum);
  } catch (const Timeout& e) {
    message = e.what();
  }
  EXPECT_THAT(message, ::testing::HasSubstr("all_reduce sum of 16.4 KB (f32) on rank 0 of 1 (" +
                                            comm->device().str() + ") did not complete within"));
  EXPECT_THAT(message, ::testing::HasSubstr("it waits for rank 0 of 1"));
  EXPECT_THROW(comm->barrier(), CommError);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  comm.reset();
  // The shared communicator is unaffected.
  g_nccl->barrier();
}

// Where no rank has a GPU (this development machine), the factory fails on every rank with
// InvalidArgument before NCCL is touched, instead of each rank failing differently.
TEST(Nccl, WithoutAGpuTheFactorySaysSo) {
  if (!g_no_gpu_anywhere) GTEST_SKIP() << "there is a GPU; this checks the message without one";
  EXPECT_THAT(invalid_argument_message([] { make_communicator("nccl"); }),
              ::testing::HasSubstr("sees no CUDA device"));
}

// More ranks on a node than GPUs: every rank gets InvalidArgument from the exchange of GPU
// choices, before NCCL (which would say "duplicate GPU" on some ranks and hang the others).
TEST(Nccl, MoreRanksThanGpusIsInvalidArgumentOnEveryRank) {
  if (!g_too_few_gpus) GTEST_SKIP() << "needs more ranks on a node than GPUs (-n 2 on one GPU)";
  const std::string message = invalid_argument_message([] { make_communicator("nccl"); });
  EXPECT_THAT(message, ::testing::HasSubstr("one rank per GPU: ranks 0 and 1 on host "));
  EXPECT_THAT(message, ::testing::HasSubstr("both chose the GPU at PCI"));
  EXPECT_THAT(message, ::testing::HasSubstr("NCCL itself would fail with \"duplicate GPU\""));
}

TEST(Nccl, LibraryVersion) {
  EXPECT_TRUE(nccl_available());
  const std::string v = nccl_library_version();
  EXPECT_EQ(v.substr(0, 2), "2.") << v;
}

}  // namespace
}  // namespace terse

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // MPI for the agreement on whether to run and for the final verdict (host memory).
  auto mpi = terse::make_communicator("mpi");
  int visible = 0;
  if (cudaGetDeviceCount(&visible) != cudaSuccess) {
    visible = 0;
    cudaGetLastError();
  }
  const int local = terse::local_rank_count();
  int can_run = visible >= local && visible > 0 ? 1 : 0;
  int any_gpu = visible > 0 ? 1 : 0;
  int every_gpu = any_gpu;
  mpi->all_reduce(terse::TensorView::of(&can_run, 1), terse::ReduceOp::kMin);
  mpi->all_reduce(terse::TensorView::of(&any_gpu, 1), terse::ReduceOp::kMax);
  mpi->all_reduce(terse::TensorView::of(&every_gpu, 1), terse::ReduceOp::kMin);
  terse::g_no_gpu_anywhere = any_gpu == 0;
  terse::g_too_few_gpus = every_gpu == 1 && can_run == 0;
  std::unique_ptr<terse::Communicator> nccl;
  if (can_run) {
    nccl = terse::make_communicator("nccl");
    terse::g_nccl = nccl.get();
  } else {
    terse::g_skip_reason = "NCCL needs one GPU per rank: this rank sees " +
                           std::to_string(visible) + " CUDA devices for " + std::to_string(local) +
                           " ranks on its node (or another rank has too few)";
  }
  if (mpi->rank() != 0) GTEST_FLAG_SET(brief, true);
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  mpi->all_reduce(terse::TensorView::of(&failed, 1), terse::ReduceOp::kMax);
  if (mpi->rank() == 0) {
    std::printf("multirank nccl: %d ranks, %s%s\n", mpi->size(),
                failed ? "FAILED on some rank" : "all passed",
                nccl ? "" : (" (skipped: " + terse::g_skip_reason + ")").c_str());
  }
  nccl.reset();
  mpi.reset();
  return failed;
}

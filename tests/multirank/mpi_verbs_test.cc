// Every verb of the MPI backend on every rank, bit-exact against a reference each rank computes
// from all ranks' deterministic inputs. Run under mpiexec (CTest: multirank.mpi_verbs).

#include <gtest/gtest.h>

#include <numeric>
#include <string>

#include "comm_test_util.h"
#include "terse/comm/communicator.h"

namespace terse {
namespace {

using testing::Bytes;
using testing::make_input;
using testing::reference_reduce;
using testing::view_of;

Communicator* g_comm = nullptr;

// Sizes include empty, one element, an odd size and a few MB (1M elements).
const int64_t kSizes[] = {0, 1, 4097, int64_t{1} << 20};

Bytes exact_input(DType dt, int rank, int64_t n, uint64_t salt) {
  return make_input(dt, rank, n, salt, /*exact=*/true);
}

// First differing element, or -1.
int64_t first_difference(const Bytes& a, const Bytes& b, DType dt) {
  if (a.size() != b.size()) return 0;
  const size_t es = dtype_size(dt);
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) return static_cast<int64_t>(i / es);
  }
  return -1;
}

class MpiVerbs : public ::testing::TestWithParam<DType> {
 protected:
  Communicator& c() { return *g_comm; }
  int rank() { return g_comm->rank(); }
  int size() { return g_comm->size(); }
};

TEST_P(MpiVerbs, AllReduce) {
  const DType dt = GetParam();
  for (const int64_t n : kSizes) {
    for (const ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
      std::vector<Bytes> all;
      for (int r = 0; r < size(); ++r) all.push_back(exact_input(dt, r, n, 11));
      const Bytes want = reference_reduce(all, dt, n, op);
      Bytes mine = all[static_cast<size_t>(rank())];
      c().all_reduce(view_of(mine, dt), op);
      EXPECT_EQ(first_difference(mine, want, dt), -1)
          << "all_reduce " << reduce_op_name(op) << " n=" << n << " rank " << rank();
    }
  }
}

TEST_P(MpiVerbs, AllGather) {
  const DType dt = GetParam();
  for (const int64_t n : kSizes) {
    Bytes want;
    for (int r = 0; r < size(); ++r) {
      const Bytes b = exact_input(dt, r, n, 12);
      want.insert(want.end(), b.begin(), b.end());
    }
    Bytes in = exact_input(dt, rank(), n, 12);
    Bytes out(want.size(), 0xAB);
    c().all_gather(view_of(in, dt), view_of(out, dt));
    EXPECT_EQ(first_difference(out, want, dt), -1) << "all_gather n=" << n << " rank " << rank();
    // In place: `in` is this rank's chunk of `out` (MPI_IN_PLACE).
    Bytes inplace(want.size(), 0xCD);
    std::copy(in.begin(), in.end(), inplace.begin() + static_cast<long>(in.size()) * rank());
    TensorView whole = view_of(inplace, dt);
    c().all_gather(whole.slice(n * rank(), n), whole);
    EXPECT_EQ(first_difference(inplace, want, dt), -1) << "in-place all_gather n=" << n;
  }
}

TEST_P(MpiVerbs, AllGatherv) {
  const DType dt = GetParam();
  for (const int64_t big : kSizes) {
    std::vector<int64_t> counts;
    for (int r = 0; r < size(); ++r) counts.push_back(r == 1 ? big : (r * 3) % 4);
    Bytes want;
    for (int r = 0; r < size(); ++r) {
      const Bytes b = exact_input(dt, r, counts[static_cast<size_t>(r)], 13);
      want.insert(want.end(), b.begin(), b.end());
    }
    Bytes in = exact_input(dt, rank(), counts[static_cast<size_t>(rank())], 13);
    Bytes out(want.size(), 0xAB);
    c().all_gatherv(view_of(in, dt), view_of(out, dt), counts);
    EXPECT_EQ(first_difference(out, want, dt), -1) << "all_gatherv big=" << big;
  }
}

TEST_P(MpiVerbs, AllToAll) {
  const DType dt = GetParam();
  const int64_t es = static_cast<int64_t>(dtype_size(dt));
  for (const int64_t chunk : {int64_t{0}, int64_t{1}, int64_t{4097}, int64_t{1} << 18}) {
    Bytes want;
    for (int r = 0; r < size(); ++r) {
      const Bytes b = exact_input(dt, r, chunk * size(), 14);
      const auto begin = b.begin() + static_cast<long>(chunk * rank() * es);
      want.insert(want.end(), begin, begin + static_cast<long>(chunk * es));
    }
    Bytes in = exact_input(dt, rank(), chunk * size(), 14);
    Bytes out(in.size(), 0xAB);
    c().all_to_all(view_of(in, dt), view_of(out, dt));
    EXPECT_EQ(first_difference(out, want, dt), -1) << "all_to_all chunk=" << chunk;
    c().all_to_all(view_of(in, dt), view_of(in, dt));
    EXPECT_EQ(first_difference(in, want, dt), -1) << "in-place all_to_all chunk=" << chunk;
  }
}

TEST_P(MpiVerbs, AllToAllv) {
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
      const Bytes b = exact_input(dt, s, std::accumulate(sc.begin(), sc.end(), int64_t{0}), 15);
      const int64_t off = std::accumulate(sc.begin(), sc.begin() + rank(), int64_t{0});
      const auto begin = b.begin() + static_cast<long>(off * es);
      want.insert(want.end(), begin,
                  begin + static_cast<long>(sc[static_cast<size_t>(rank())] * es));
    }
    Bytes in = exact_input(dt, rank(), std::accumulate(send.begin(), send.end(), int64_t{0}), 15);
    Bytes out(want.size(), 0xAB);
    c().all_to_allv(view_of(in, dt), send, view_of(out, dt), recv);
    EXPECT_EQ(first_difference(out, want, dt), -1) << "all_to_allv big=" << big;
  }
}

TEST_P(MpiVerbs, Broadcast) {
  const DType dt = GetParam();
  for (int root = 0; root < size(); ++root) {
    for (const int64_t n : kSizes) {
      const Bytes want = exact_input(dt, root, n, 16);
      Bytes buf = rank() == root ? want : Bytes(want.size(), 0xEE);
      c().broadcast(view_of(buf, dt), root);
      EXPECT_EQ(first_difference(buf, want, dt), -1) << "broadcast root=" << root << " n=" << n;
    }
  }
  c().barrier();
}

INSTANTIATE_TEST_SUITE_P(AllDTypes, MpiVerbs, ::testing::ValuesIn(testing::all_dtypes()),
                         [](const ::testing::TestParamInfo<DType>& p) {
                           return std::string(dtype_name(p.param));
                         });

TEST(MpiComm, BackendAndTimeout) {
  EXPECT_STREQ(g_comm->backend(), "mpi");
  EXPECT_EQ(g_comm->size(), 4) << "run under mpiexec -n 4";
  EXPECT_EQ(g_comm->timeout().count(), 120000) << "CTest sets TERSE_TIMEOUT_S=120";
  EXPECT_TRUE(launched_under_mpi());
  float x = 1.0f;
  auto w = g_comm->all_reduce_async(TensorView::of(&x, 1), ReduceOp::kSum);
  w->wait(std::chrono::seconds(60));
  EXPECT_TRUE(w->test());
  EXPECT_EQ(x, static_cast<float>(g_comm->size()));
}

}  // namespace
}  // namespace terse

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto comm = terse::make_communicator("mpi");
  terse::g_comm = comm.get();
  // Only rank 0 prints the full report; the others print failures only.
  if (comm->rank() != 0) GTEST_FLAG_SET(brief, true);
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  // The job fails when any rank failed, and every rank says so.
  comm->all_reduce(terse::TensorView::of(&failed, 1), terse::ReduceOp::kMax);
  if (comm->rank() == 0) {
    std::printf("multirank: %d ranks, %s\n", comm->size(),
                failed ? "FAILED on some rank" : "all passed");
  }
  comm.reset();
  return failed;
}

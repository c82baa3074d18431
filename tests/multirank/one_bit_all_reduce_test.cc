// OneBitAllReduce over the MPI backend, on every rank: bit for bit against a single-process
// reference of the math in one_bit_all_reduce.h (each rank simulates every rank's input, drawn
// from a seed, and both errors), over consecutive calls; and the agreed NumericalError. Run
// under mpiexec (CTest: multirank.one_bit_all_reduce). The reference is the unit test's
// (tests/unit/comm_algorithms/one_bit_all_reduce_reference.h), so a change to the documented
// rounding is made once.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "one_bit_all_reduce_reference.h"
#include "terse/comm/algorithms/one_bit_all_reduce.h"
#include "terse/comm/communicator.h"
#include "terse/core/philox.h"

namespace terse {
namespace {

using ::testing::HasSubstr;
using Vec = std::vector<float>;
using one_bit_reference::ref_padded;
using one_bit_reference::RefWorld;
using one_bit_reference::same_bits;

Communicator* g_comm = nullptr;

// N(0,1)-ish (sum of uniforms) with exact zeros at every 16th element; f(seed, rank, call).
Vec input(int64_t numel, int rank, int call) {
  PhiloxStream rng(20261123u + static_cast<uint64_t>(call), static_cast<uint64_t>(rank));
  Vec v(static_cast<size_t>(numel));
  for (int64_t i = 0; i < numel; ++i) {
    v[i] = (i % 16 == 5) ? 0.0f : (rng.uniform() + rng.uniform() + rng.uniform() - 1.5f);
  }
  return v;
}

TEST(MultirankOneBitAllReduce, BitExactAgainstReferenceOverThreeCalls) {
  const int w = g_comm->size();
  const int me = g_comm->rank();
  // 100003 and 300007 span several 2^16-element norm blocks; 2 threads change no bit.
  for (int64_t numel :
       {int64_t{97}, int64_t{4097}, 5 * ref_padded(1, w), int64_t{100003}, int64_t{300007}}) {
    for (int threads : {1, 2}) {
      // Two threads also take the pairwise rounds: one more code path, the same bits.
      SCOPED_TRACE(testing::Message()
                   << "numel " << numel << " rank " << me << " threads " << threads);
      OneBitAllReduce::Options options;
      options.threads = threads;
      options.pairwise = threads == 2;
      OneBitAllReduce algo(*g_comm, numel, options);
      RefWorld ref(w, numel);
      for (int k = 0; k < 3; ++k) {
        std::vector<Vec> in;
        for (int r = 0; r < w; ++r) in.push_back(input(numel, r, k));
        Vec mine = in[me];
        const OneBitAllReduceReport rep = algo.all_reduce(TensorView::of(mine.data(), numel));
        const Vec want = ref.step(in);
        EXPECT_TRUE(same_bits(mine, want)) << "output, call " << k;
        EXPECT_TRUE(same_bits(algo.worker_error(), ref.ew[me])) << "worker error, call " << k;
        EXPECT_TRUE(same_bits(algo.server_error(), ref.es[me])) << "server error, call " << k;
        EXPECT_EQ(rep.bytes_sent, one_bit_all_reduce_bytes(numel, w));
      }
    }
  }
}

TEST(MultirankOneBitAllReduce, NonFiniteOnRankOneStopsEveryRank) {
  const int w = g_comm->size();
  const int me = g_comm->rank();
  const int bad = w > 1 ? 1 : 0;
  const int64_t numel = 4097;
  OneBitAllReduce algo(*g_comm, numel);
  Vec v = input(numel, me, 0);
  algo.all_reduce(TensorView::of(v.data(), numel));
  const Vec ew = algo.worker_error(), es = algo.server_error();
  Vec in = input(numel, me, 1);
  if (me == bad) in[4000] = std::numeric_limits<float>::quiet_NaN();
  const Vec before = in;
  try {
    algo.all_reduce(TensorView::of(in.data(), numel));
    ADD_FAILURE() << "rank " << me << " did not throw";
  } catch (const NumericalError& e) {
    EXPECT_THAT(e.what(), HasSubstr("on rank(s) " + std::to_string(bad) + ";"));
  }
  EXPECT_TRUE(same_bits(in, before));
  EXPECT_TRUE(same_bits(algo.worker_error(), ew));
  EXPECT_TRUE(same_bits(algo.server_error(), es));
  g_comm->barrier();
}

}  // namespace
}  // namespace terse

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto comm = terse::make_communicator("mpi");
  terse::g_comm = comm.get();
  if (comm->rank() != 0) GTEST_FLAG_SET(brief, true);
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  // The job fails when any rank failed, and every rank says so.
  comm->all_reduce(terse::TensorView::of(&failed, 1), terse::ReduceOp::kMax);
  if (comm->rank() == 0) {
    std::printf("multirank one_bit_all_reduce: %d ranks, %s\n", comm->size(),
                failed ? "FAILED on some rank" : "all passed");
  }
  comm.reset();
  return failed;
}

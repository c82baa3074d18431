// OneBitAllReduce over the MPI backend, on every rank: bit for bit against a single-process
// reference of the math in one_bit_all_reduce.h (each rank simulates every rank's input, drawn
// from a seed, and both errors), over consecutive calls; and the agreed NumericalError. Run
// under mpiexec (CTest: multirank.one_bit_all_reduce). The reference repeats the one in
// tests/unit/comm_algorithms/one_bit_all_reduce_test.cc on purpose: each test stands alone.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "terse/comm/algorithms/one_bit_all_reduce.h"
#include "terse/comm/communicator.h"
#include "terse/core/philox.h"

namespace terse {
namespace {

using ::testing::HasSubstr;
using Vec = std::vector<float>;

Communicator* g_comm = nullptr;

// Summation order (the one the header documents): blocks of 2^16 elements by index; in a block,
// squares in double, 8 lanes by index mod 8, lanes combined ((l0 + l1) + (l2 + l3)) + ((l4 + l5)
// + (l6 + l7)); block values added in block order from 0; scale = f32(sqrt(ss / n)).
float ref_scale(const Vec& v) {
  const size_t block = size_t{1} << 16;
  double ss = 0.0;
  for (size_t b = 0; b < v.size(); b += block) {
    double l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t i = b; i < std::min(v.size(), b + block); ++i) {
      l[i % 8] += static_cast<double>(v[i]) * v[i];
    }
    ss += ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
  }
  return static_cast<float>(std::sqrt(ss / static_cast<double>(v.size())));
}

int64_t ref_padded(int64_t numel, int w) {
  int64_t lcm = 8;
  while (lcm % w != 0) lcm += 8;
  const int64_t div = w * lcm;
  return (numel + div - 1) / div * div;
}

struct RefWorld {
  int w;
  int64_t numel, n;
  std::vector<Vec> ew, es;
  RefWorld(int w_, int64_t numel_)
      : w(w_), numel(numel_), n(ref_padded(numel_, w_)), ew(w_), es(w_) {
    for (int r = 0; r < w; ++r) {
      ew[r].assign(static_cast<size_t>(n), 0.0f);
      es[r].assign(static_cast<size_t>(n / w), 0.0f);
    }
  }
  Vec step(const std::vector<Vec>& in) {
    const int64_t chunk = n / w;
    std::vector<float> sw(w), ss(w);
    std::vector<std::vector<bool>> pos(w, std::vector<bool>(static_cast<size_t>(n)));
    std::vector<std::vector<bool>> spos(w, std::vector<bool>(static_cast<size_t>(chunk)));
    for (int r = 0; r < w; ++r) {
      Vec x(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) x[i] = (i < numel ? in[r][i] : 0.0f) + ew[r][i];
      sw[r] = ref_scale(x);
      for (int64_t i = 0; i < n; ++i) {
        pos[r][i] = x[i] >= 0.0f;
        ew[r][i] = x[i] - (pos[r][i] ? sw[r] : -sw[r]);
      }
    }
    for (int r = 0; r < w; ++r) {
      Vec y(static_cast<size_t>(chunk));
      for (int64_t i = 0; i < chunk; ++i) {
        float acc = 0.0f;
        for (int j = 0; j < w; ++j) {
          const float c = sw[j] / static_cast<float>(w);
          acc += pos[j][r * chunk + i] ? c : -c;
        }
        y[i] = acc + es[r][i];
      }
      ss[r] = ref_scale(y);
      for (int64_t i = 0; i < chunk; ++i) {
        spos[r][i] = y[i] >= 0.0f;
        es[r][i] = y[i] - (spos[r][i] ? ss[r] : -ss[r]);
      }
    }
    Vec out(static_cast<size_t>(numel));
    for (int64_t i = 0; i < numel; ++i) {
      const int64_t j = i / chunk;
      out[i] = spos[j][i - j * chunk] ? ss[j] : -ss[j];
    }
    return out;
  }
};

// N(0,1)-ish (sum of uniforms) with exact zeros at every 16th element; f(seed, rank, call).
Vec input(int64_t numel, int rank, int call) {
  PhiloxStream rng(20261123u + static_cast<uint64_t>(call), static_cast<uint64_t>(rank));
  Vec v(static_cast<size_t>(numel));
  for (int64_t i = 0; i < numel; ++i) {
    v[i] = (i % 16 == 5) ? 0.0f : (rng.uniform() + rng.uniform() + rng.uniform() - 1.5f);
  }
  return v;
}

bool same_bits(const Vec& a, const Vec& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(MultirankOneBitAllReduce, BitExactAgainstReferenceOverThreeCalls) {
  const int w = g_comm->size();
  const int me = g_comm->rank();
  // 100003 and 300007 span several 2^16-element norm blocks; 2 threads change no bit.
  for (int64_t numel :
       {int64_t{97}, int64_t{4097}, 5 * ref_padded(1, w), int64_t{100003}, int64_t{300007}}) {
    for (int threads : {1, 2}) {
      SCOPED_TRACE(testing::Message()
                   << "numel " << numel << " rank " << me << " threads " << threads);
      OneBitAllReduce algo(*g_comm, numel, OneBitAllReduce::Options{threads});
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

// OneBitAllReduce on threads-as-ranks: bit for bit against a single-process reference of the
// math in one_bit_all_reduce.h (plain loops over W simulated ranks), and its errors, state and
// byte accounting.

#include "terse/comm/algorithms/one_bit_all_reduce.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "forwarding_communicator.h"
#include "one_bit_all_reduce_reference.h"
#include "terse/comm/local_communicator.h"
#include "terse/core/philox.h"

namespace terse {
namespace {

using ::testing::HasSubstr;
using Vec = std::vector<float>;
using one_bit_reference::ref_padded;
using one_bit_reference::ref_scale;
using one_bit_reference::RefWorld;
using one_bit_reference::same_bits;

// Uniform in [-1, 1) with every 16th element exactly 0 (sgn(0) = +1 must match too); a
// function of (seed, rank, call).
Vec input(int64_t numel, int rank, int call, uint64_t seed = 7) {
  PhiloxStream rng(seed * 7919u + static_cast<uint64_t>(call), static_cast<uint64_t>(rank));
  Vec v(static_cast<size_t>(numel));
  for (int64_t i = 0; i < numel; ++i) v[i] = (i % 16 == 3) ? 0.0f : 2.0f * rng.uniform() - 1.0f;
  return v;
}

// Per rank, per call: output and both errors.
struct Trace {
  std::vector<std::vector<Vec>> out, ew, es;  // [call][rank]
};

Trace run_algorithm(int w, int64_t numel, int calls, int threads = 1, bool pairwise = false,
                    bool defer = true) {
  Trace t;
  t.out.assign(calls, std::vector<Vec>(w));
  t.ew = t.out;
  t.es = t.out;
  run_local_ranks(w, [&](Communicator& c) {
    OneBitAllReduce::Options options;
    options.threads = threads;
    options.pairwise = pairwise;
    options.defer_worker_error = defer;
    OneBitAllReduce algo(c, numel, options);
    for (int k = 0; k < calls; ++k) {
      Vec v = input(numel, c.rank(), k);
      algo.all_reduce(TensorView::of(v.data(), numel));
      t.out[k][c.rank()] = v;
      t.ew[k][c.rank()] = algo.worker_error();
      t.es[k][c.rank()] = algo.server_error();
    }
  });
  return t;
}

TEST(OneBitAllReduce, PaddedNumel) {
  EXPECT_EQ(one_bit_padded_numel(1, 1), 8);
  EXPECT_EQ(one_bit_padded_numel(97, 2), 112);     // multiple of 2 * 8
  EXPECT_EQ(one_bit_padded_numel(97, 3), 144);     // multiple of 3 * 24
  EXPECT_EQ(one_bit_padded_numel(4097, 4), 4128);  // multiple of 4 * 8
  EXPECT_EQ(one_bit_padded_numel(64, 8), 64);
  EXPECT_EQ(one_bit_padded_numel(65, 8), 128);
  EXPECT_THROW(one_bit_padded_numel(0, 4), InvalidArgument);
}

// Every call's output and both errors on every rank, bit for bit the reference's for the same
// inputs (input(numel, r, k)).
void expect_reference_trace(const Trace& t, int w, int64_t numel, int calls) {
  RefWorld ref(w, numel);
  for (int k = 0; k < calls; ++k) {
    std::vector<Vec> in;
    for (int r = 0; r < w; ++r) in.push_back(input(numel, r, k));
    const Vec want = ref.step(in);
    for (int r = 0; r < w; ++r) {
      ASSERT_TRUE(same_bits(t.out[k][r], want)) << "output, call " << k << " rank " << r;
      ASSERT_TRUE(same_bits(t.ew[k][r], ref.ew[r])) << "worker error, call " << k << " rank " << r;
      ASSERT_TRUE(same_bits(t.es[k][r], ref.es[r])) << "server error, call " << k << " rank " << r;
    }
  }
}

TEST(OneBitAllReduce, BitExactAgainstReference) {
  for (int w : {1, 2, 3, 4, 8}) {
    // 3 * W * lcm(W, 8) is an exact multiple: no padding.
    const int64_t exact = 3 * ref_padded(1, w);
    for (int64_t numel : {int64_t{1}, int64_t{7}, int64_t{97}, int64_t{4097}, exact}) {
      SCOPED_TRACE(testing::Message() << "W=" << w << " numel=" << numel);
      const int calls = 4;
      for (bool pairwise : {false, true}) {
        for (bool defer : {true, false}) {
          SCOPED_TRACE(pairwise ? "pairwise rounds" : "one-call collectives");
          SCOPED_TRACE(defer ? "worker error in the decode pass" : "worker error under the wire");
          const Trace t = run_algorithm(w, numel, calls, 1, pairwise, defer);
          ASSERT_NO_FATAL_FAILURE(expect_reference_trace(t, w, numel, calls));
          // The errors carried over: the last call's worker error is not the first call's.
          EXPECT_FALSE(same_bits(t.ew[0][0], t.ew[calls - 1][0]));
        }
      }
    }
  }
}

// Buffers of several 2^16-element norm blocks, for the worker vector and for the server chunk
// (W = 3: N = 200016, chunks of 66672), against the reference on 1 and 2 threads: the blocked
// summation order is the documented one (one running sum over all lanes gives other bits here).
TEST(OneBitAllReduce, BitExactAgainstReferenceOverSeveralBlocks) {
  for (int w : {1, 3}) {
    for (int64_t numel : {int64_t{65536}, int64_t{150001}, int64_t{200003}}) {
      for (int threads : {1, 2}) {
        SCOPED_TRACE(testing::Message()
                     << "W=" << w << " numel=" << numel << " threads=" << threads);
        const int calls = 2;
        for (bool defer : {true, false}) {
          const Trace t = run_algorithm(w, numel, calls, threads, /*pairwise=*/threads == 2, defer);
          ASSERT_NO_FATAL_FAILURE(expect_reference_trace(t, w, numel, calls));
        }
      }
    }
  }
}

// The norm's blocks are visible in the scale: one rank, 2^17 elements (two blocks), x[0] = A
// and 8192 values 2^-27 in lane 0 of block 1. Blocked, lane 0 of block 1 sums to 2^-41 and
// ss = A^2 + 2^-41; one running lane (the order before blocks) absorbs each 2^-54 into A^2
// (below half an ulp) and gets ss = A^2. A is searched so that the two round to different f32
// scales; the worker error's element 1 is 0 - s, so it shows which one was used.
TEST(OneBitAllReduce, NormIsSummedInBlocksOf2To16) {
  const int64_t numel = int64_t{1} << 17;
  const auto scale = [&](double ss) {
    return static_cast<float>(std::sqrt(ss / static_cast<double>(numel)));
  };
  float a = 1.0f;
  while (a < 1.5f) {
    const double a2 = static_cast<double>(a) * a;
    if (scale(a2 + std::ldexp(1.0, -41)) != scale(a2)) break;
    a = std::nextafter(a, 2.0f);
  }
  ASSERT_LT(a, 1.5f) << "no A found whose two sums round apart";
  const double a2 = static_cast<double>(a) * a;
  const float want = scale(a2 + std::ldexp(1.0, -41));
  ASSERT_NE(want, scale(a2));
  for (int threads : {1, 2}) {
    run_local_ranks(1, [&](Communicator& c) {
      OneBitAllReduce algo(c, numel, OneBitAllReduce::Options{threads});
      Vec v(static_cast<size_t>(numel), 0.0f);
      v[0] = a;
      for (int64_t i = 65536; i < numel; i += 8) v[static_cast<size_t>(i)] = std::ldexp(1.0f, -27);
      algo.all_reduce(TensorView::of(v.data(), numel));
      EXPECT_EQ(-algo.worker_error()[1], want) << threads << " threads";
    });
  }
}

// The thread count changes no bit of the output or either error, for sizes that need padding,
// n = 1, a buffer of exactly one block and buffers of several blocks split unevenly over 3.
TEST(OneBitAllReduce, ThreadCountChangesNoBit) {
  for (int w : {1, 2, 4}) {
    for (int64_t numel : {int64_t{1}, int64_t{97}, int64_t{65536}, int64_t{65537},
                          int64_t{4 * 65536 + 13}, int64_t{5 * 65536}}) {
      SCOPED_TRACE(testing::Message() << "W=" << w << " numel=" << numel);
      const int calls = 3;
      const Trace one = run_algorithm(w, numel, calls, 1);
      for (int threads : {2, 3}) {
        const Trace many = run_algorithm(w, numel, calls, threads);
        for (int k = 0; k < calls; ++k) {
          for (int r = 0; r < w; ++r) {
            ASSERT_TRUE(same_bits(many.out[k][r], one.out[k][r]))
                << threads << " threads: output, call " << k << " rank " << r;
            ASSERT_TRUE(same_bits(many.ew[k][r], one.ew[k][r]))
                << threads << " threads: worker error, call " << k << " rank " << r;
            ASSERT_TRUE(same_bits(many.es[k][r], one.es[k][r]))
                << threads << " threads: server error, call " << k << " rank " << r;
          }
        }
      }
    }
  }
}

TEST(OneBitAllReduce, ThreadsBelowOneIsInvalidArgument) {
  run_local_ranks(1, [](Communicator& c) {
    try {
      OneBitAllReduce algo(c, 100, OneBitAllReduce::Options{0});
      ADD_FAILURE() << "no throw";
    } catch (const InvalidArgument& e) {
      EXPECT_THAT(e.what(), HasSubstr("Options::threads must be >= 1, got 0"));
    }
  });
}

TEST(OneBitAllReduce, SignOfZeroIsPlus) {
  // One rank, 8 elements: x = {0, 4, ..., 4}, s = sqrt(7 * 16 / 8) = sqrt(14). sgn(0) = +1 gives
  // e[0] = 0 - s and out[0] = +s_s; sgn(0) = -1 would give +s and -s_s.
  run_local_ranks(1, [&](Communicator& c) {
    OneBitAllReduce algo(c, 8);
    Vec v = {0, 4, 4, 4, 4, 4, 4, 4};
    algo.all_reduce(TensorView::of(v.data(), 8));
    const float s = static_cast<float>(std::sqrt(14.0));
    EXPECT_EQ(algo.worker_error()[0], -s);
    EXPECT_EQ(algo.worker_error()[1], 4.0f - s);
    // Server: y = s * (+1) everywhere, so s_s = s, e_s = 0 and every output is +s.
    for (float o : v) EXPECT_EQ(o, s);
    for (float e : algo.server_error()) EXPECT_EQ(e, 0.0f);
  });
}

TEST(OneBitAllReduce, ConstantInputGivesExactMean) {
  // No padding: every rank passes 0.5 everywhere; the mean 0.5 comes back exactly, errors 0.
  const int w = 4;
  const int64_t numel = 3 * 32;
  run_local_ranks(w, [&](Communicator& c) {
    OneBitAllReduce algo(c, numel);
    for (int k = 0; k < 3; ++k) {
      Vec v(numel, 0.5f);
      algo.all_reduce(TensorView::of(v.data(), numel));
      for (float o : v) ASSERT_EQ(o, 0.5f);
      for (float e : algo.worker_error()) ASSERT_EQ(e, 0.0f);
      for (float e : algo.server_error()) ASSERT_EQ(e, 0.0f);
    }
  });
}

TEST(OneBitAllReduce, ErrorFeedbackAccountsForTheMean) {
  // With padding and different inputs: out = mean_r(m_r) + mean_r(e_w,r old - new) + e_s old -
  // e_s new, element by element (to f32 rounding), over consecutive calls.
  const int w = 3;
  const int64_t numel = 97;
  const int64_t n = ref_padded(numel, w), chunk = n / w;
  std::vector<std::vector<Vec>> ew(4, std::vector<Vec>(w)), es = ew;
  std::vector<Vec> out(3);
  run_local_ranks(w, [&](Communicator& c) {
    OneBitAllReduce algo(c, numel);
    ew[0][c.rank()] = algo.worker_error();
    es[0][c.rank()] = algo.server_error();
    for (int k = 0; k < 3; ++k) {
      Vec v = input(numel, c.rank(), k);
      algo.all_reduce(TensorView::of(v.data(), numel));
      if (c.rank() == 0) out[k] = v;
      ew[k + 1][c.rank()] = algo.worker_error();
      es[k + 1][c.rank()] = algo.server_error();
    }
  });
  for (int k = 0; k < 3; ++k) {
    for (int64_t i = 0; i < numel; ++i) {
      double want = 0;
      for (int r = 0; r < w; ++r) {
        want += (double{input(numel, r, k)[i]} + ew[k][r][i] - ew[k + 1][r][i]) / w;
      }
      const int64_t j = i / chunk;
      want += double{es[k][j][i - j * chunk]} - es[k + 1][j][i - j * chunk];
      ASSERT_NEAR(out[k][i], want, 1e-5) << "call " << k << " element " << i;
    }
  }
}

TEST(OneBitAllReduce, StateDictRoundTripThenIdenticalNextCall) {
  const int w = 2;
  const int64_t numel = 97;
  std::vector<Vec> out_a(w), out_b(w), ew_a(w), ew_b(w), es_a(w), es_b(w);
  run_local_ranks(w, [&](Communicator& c) {
    const int r = c.rank();
    OneBitAllReduce a(c, numel);
    for (int k = 0; k < 2; ++k) {
      Vec v = input(numel, r, k);
      a.all_reduce(TensorView::of(v.data(), numel));
    }
    const StateDict saved = a.state_dict("onebit.");
    EXPECT_EQ(saved.tensors.count("onebit.worker_error"), 1u);
    EXPECT_EQ(saved.tensors.count("onebit.server_error"), 1u);
    OneBitAllReduce b(c, numel);
    b.load_state_dict(saved, "onebit.");
    EXPECT_TRUE(same_bits(b.worker_error(), a.worker_error()));
    EXPECT_TRUE(same_bits(b.server_error(), a.server_error()));
    Vec va = input(numel, r, 2), vb = va;
    a.all_reduce(TensorView::of(va.data(), numel));
    b.all_reduce(TensorView::of(vb.data(), numel));
    out_a[r] = va;
    out_b[r] = vb;
    ew_a[r] = a.worker_error();
    ew_b[r] = b.worker_error();
    es_a[r] = a.server_error();
    es_b[r] = b.server_error();
  });
  for (int r = 0; r < w; ++r) {
    EXPECT_TRUE(same_bits(out_a[r], out_b[r]));
    EXPECT_TRUE(same_bits(ew_a[r], ew_b[r]));
    EXPECT_TRUE(same_bits(es_a[r], es_b[r]));
  }
  // And a fresh one (errors zero) differs: the state mattered.
  RefWorld fresh(w, numel);
  std::vector<Vec> in;
  for (int r = 0; r < w; ++r) in.push_back(input(numel, r, 2));
  EXPECT_FALSE(same_bits(fresh.step(in), out_a[0]));
}

TEST(OneBitAllReduce, LoadStateOfWrongSizeThrowsAndKeepsState) {
  run_local_ranks(1, [&](Communicator& c) {
    OneBitAllReduce small(c, 100), big(c, 1000);
    Vec v = input(100, 0, 0);
    small.all_reduce(TensorView::of(v.data(), 100));
    const Vec ew = small.worker_error(), es = small.server_error();
    try {
      small.load_state_dict(big.state_dict("x."), "x.");
      ADD_FAILURE() << "no throw";
    } catch (const InvalidArgument& e) {
      EXPECT_THAT(e.what(), HasSubstr("has 1000 elements"));
      EXPECT_THAT(e.what(), HasSubstr("needs 104"));
    }
    // Right worker error, wrong server error: nothing is copied either.
    StateDict mixed = small.state_dict("x.");
    mixed.tensors["x.worker_error"].bytes.assign(mixed.tensors["x.worker_error"].bytes.size(), 0);
    mixed.tensors["x.server_error"] = big.state_dict("x.").tensors["x.server_error"];
    EXPECT_THROW(small.load_state_dict(mixed, "x."), InvalidArgument);
    EXPECT_TRUE(same_bits(small.worker_error(), ew));
    EXPECT_TRUE(same_bits(small.server_error(), es));
    // Wrong prefix: InvalidArgument naming the key.
    try {
      small.load_state_dict(small.state_dict("y."), "x.");
      ADD_FAILURE() << "no throw";
    } catch (const InvalidArgument& e) {
      EXPECT_THAT(e.what(), HasSubstr("x.worker_error"));
    }
  });
}

TEST(OneBitAllReduce, NonFiniteOnOneRankThrowsOnEveryRankAndChangesNothing) {
  const int w = 4;
  const int64_t numel = 97;
  for (bool defer : {true, false}) {
    for (float bad :
         {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
      std::vector<int> threw(w, 0);
      run_local_ranks(w, [&](Communicator& c) {
        OneBitAllReduce::Options options;
        options.defer_worker_error = defer;
        OneBitAllReduce algo(c, numel, options);
        Vec v = input(numel, c.rank(), 0);
        algo.all_reduce(TensorView::of(v.data(), numel));
        const Vec ew = algo.worker_error(), es = algo.server_error();
        Vec in = input(numel, c.rank(), 1);
        if (c.rank() == 2) in[50] = bad;
        const Vec before = in;
        try {
          algo.all_reduce(TensorView::of(in.data(), numel));
        } catch (const NumericalError& e) {
          threw[c.rank()] = 1;
          EXPECT_THAT(e.what(), HasSubstr("on rank(s) 2;"));
        }
        EXPECT_TRUE(same_bits(in, before));
        EXPECT_TRUE(same_bits(algo.worker_error(), ew));
        EXPECT_TRUE(same_bits(algo.server_error(), es));
        // The world is still usable: the next good call goes through on every rank.
        Vec again = input(numel, c.rank(), 1);
        algo.all_reduce(TensorView::of(again.data(), numel));
      });
      EXPECT_EQ(threw, std::vector<int>(w, 1)) << (defer ? "deferred" : "overlapped");
    }
  }
}

TEST(OneBitAllReduce, WrongDtypeOrSizeIsInvalidArgument) {
  EXPECT_THROW(run_local_ranks(1, [](Communicator& c) { OneBitAllReduce a(c, 0); }),
               InvalidArgument);
  const int w = 3;
  std::vector<std::string> what(w);
  run_local_ranks(w, [&](Communicator& c) {
    OneBitAllReduce algo(c, 10);
    Vec v(11, 1.0f);
    std::vector<double> d(10, 1.0);
    try {
      if (c.rank() == 1) {
        algo.all_reduce(TensorView::of(d.data(), 10));  // wrong dtype on rank 1 only
      } else {
        algo.all_reduce(TensorView::of(v.data(), 10));
      }
    } catch (const InvalidArgument& e) {
      what[c.rank()] = std::string("InvalidArgument: ") + e.what();
    } catch (const CommError& e) {
      what[c.rank()] = std::string("CommError: ") + e.what();
    }
    try {
      algo.all_reduce(TensorView::of(v.data(), 11));  // wrong size everywhere
      ADD_FAILURE() << "no throw";
    } catch (const InvalidArgument& e) {
      EXPECT_THAT(e.what(),
                  HasSubstr("inout has 11 elements but this OneBitAllReduce was built for 10"));
    }
  });
  EXPECT_THAT(what[1], HasSubstr("InvalidArgument: "));
  EXPECT_THAT(what[1], HasSubstr("f64"));
  EXPECT_THAT(what[0], HasSubstr("CommError: "));
  EXPECT_THAT(what[0], HasSubstr("rank 1 passed invalid arguments"));
  EXPECT_THAT(what[2], HasSubstr("CommError: "));
}

// Forwards to a real communicator and counts the bytes of every `in` it is handed.
class CountingCommunicator : public test_support::ForwardingCommunicator {
 public:
  explicit CountingCommunicator(Communicator& inner) : ForwardingCommunicator(inner) {}
  std::unique_ptr<Work> all_reduce_async(TensorView inout, ReduceOp op) override {
    count(inout);
    return ForwardingCommunicator::all_reduce_async(inout, op);
  }
  std::unique_ptr<Work> all_gather_async(TensorView in, TensorView out) override {
    count(in);
    return ForwardingCommunicator::all_gather_async(in, out);
  }
  std::unique_ptr<Work> all_gatherv_async(TensorView in, TensorView out,
                                          const std::vector<int64_t>& counts) override {
    count(in);
    return ForwardingCommunicator::all_gatherv_async(in, out, counts);
  }
  std::unique_ptr<Work> all_to_all_async(TensorView in, TensorView out) override {
    count(in);
    const uint8_t* p = static_cast<const uint8_t*>(in.data);
    all_to_all_in_.assign(p, p + in.nbytes());
    return ForwardingCommunicator::all_to_all_async(in, out);
  }
  std::unique_ptr<Work> all_to_allv_async(TensorView in, const std::vector<int64_t>& sc,
                                          TensorView out, const std::vector<int64_t>& rc) override {
    count(in);
    return ForwardingCommunicator::all_to_allv_async(in, sc, out, rc);
  }
  std::unique_ptr<Work> broadcast_async(TensorView inout, int root) override {
    count(inout);
    return ForwardingCommunicator::broadcast_async(inout, root);
  }
  std::unique_ptr<Work> barrier_async() override {
    ++calls_;
    return ForwardingCommunicator::barrier_async();
  }
  uint64_t bytes_ = 0;
  int calls_ = 0;
  std::vector<uint8_t> all_to_all_in_;

 private:
  void count(const TensorView& v) {
    bytes_ += v.nbytes();
    ++calls_;
  }
};

// compress_s times the CPU passes outside the collectives: positive, and no more than the call
// (a 2M-element call spends milliseconds in them; a late rank's wait is not among them). The
// sleep is 600 ms, well above the bounds, because both ranks' first passes shift when each
// reaches the first collective: over 100 ms under ASan on a loaded 2-core CI machine, where a
// 300 ms sleep once left rank 0 a wait of 0.189 s.
TEST(OneBitAllReduce, ReportsItsCompressionTimeApartFromTheWait) {
  const int64_t numel = 2'000'000;
  std::vector<double> compress(2), wall(2), wait(2), overlap(2), drain(2);
  run_local_ranks(2, [&](Communicator& c) {
    OneBitAllReduce algo(c, numel);
    Vec v = input(numel, c.rank(), 0);
    if (c.rank() == 1) std::this_thread::sleep_for(std::chrono::milliseconds(600));
    const auto t0 = std::chrono::steady_clock::now();
    const OneBitAllReduceReport rep = algo.all_reduce(TensorView::of(v.data(), numel));
    const auto r = static_cast<size_t>(c.rank());
    wall[r] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    compress[r] = rep.compress_s;
    wait[r] = rep.wait_s;
    overlap[r] = rep.overlap_s;
    drain[r] = rep.drain_s;
  });
  for (size_t r = 0; r < 2; ++r) {
    EXPECT_GT(compress[r], 0.0) << "rank " << r;
    EXPECT_LE(compress[r], wall[r]) << "rank " << r;
    // The server's error update runs under the wire over 1M floats: not free. The four parts
    // are disjoint intervals of the call.
    EXPECT_GT(overlap[r], 0.0) << "rank " << r;
    EXPECT_GE(drain[r], 0.0) << "rank " << r;
    EXPECT_LE(compress[r] + wait[r] + overlap[r] + drain[r], wall[r]) << "rank " << r;
  }
  EXPECT_GE(wall[0], 0.25);     // rank 0 waited for rank 1 ...
  EXPECT_LT(compress[0], 0.2);  // ... and that wait is communication, not compression
  EXPECT_GE(wait[0], 0.2);      // reported as the wait
  EXPECT_LE(wait[0], wall[0] - compress[0]);
  EXPECT_LT(wait[1], 0.1);  // the late rank itself hardly waits
}

// Deferred, the worker error update is compression: only the server's N / W pass runs under
// the wire. W = 2, 2M elements: the overlapped call updates 2M + 1M floats under it, the
// deferred one 1M, which is never longer than 2M + 1M on the same machine by much; the test
// asks only for less, over 5 calls.
TEST(OneBitAllReduce, DeferredWorkerErrorIsCompression) {
  const int64_t numel = 2'000'000;
  std::vector<double> overlapped(2), deferred(2);
  run_local_ranks(2, [&](Communicator& c) {
    OneBitAllReduce::Options options;
    options.defer_worker_error = false;
    OneBitAllReduce a(c, numel, options);
    options.defer_worker_error = true;
    OneBitAllReduce b(c, numel, options);
    const auto r = static_cast<size_t>(c.rank());
    for (int k = 0; k < 5; ++k) {
      Vec v = input(numel, c.rank(), k);
      overlapped[r] += a.all_reduce(TensorView::of(v.data(), numel)).overlap_s;
      v = input(numel, c.rank(), k);
      deferred[r] += b.all_reduce(TensorView::of(v.data(), numel)).overlap_s;
    }
  });
  for (size_t r = 0; r < 2; ++r) {
    EXPECT_GT(deferred[r], 0.0) << "rank " << r;
    EXPECT_LT(deferred[r], overlapped[r]) << "rank " << r;
  }
}

TEST(OneBitAllReduce, ReportsBytes) {
  // W = 4, 4097 elements: N = 4128, chunks of 129 bytes; ring model 2 * 3 * 129 + 2 * 3 * 4.
  EXPECT_EQ(one_bit_all_reduce_bytes(4097, 4), 798u);
  EXPECT_EQ(one_bit_all_reduce_bytes(4097, 1), 0u);
  for (int w : {1, 3, 4}) {
    for (int64_t numel : {int64_t{7}, int64_t{4097}}) {
      for (bool pairwise : {false, true}) {
        run_local_ranks(w, [&](Communicator& inner) {
          CountingCommunicator c(inner);
          OneBitAllReduce::Options options;
          options.pairwise = pairwise;
          OneBitAllReduce algo(c, numel, options);
          Vec v = input(numel, c.rank(), 0);
          const OneBitAllReduceReport rep = algo.all_reduce(TensorView::of(v.data(), numel));
          const uint64_t n = static_cast<uint64_t>(algo.padded_numel());
          const uint64_t chunk_bytes = n / (8 * static_cast<uint64_t>(w));
          EXPECT_EQ(rep.bytes_sent, one_bit_all_reduce_bytes(numel, w));
          EXPECT_EQ(rep.payload_bytes, c.bytes_) << "pairwise " << pairwise;
          EXPECT_EQ(rep.payload_bytes, pairwise ? 2 * static_cast<uint64_t>(w - 1) * chunk_bytes + 8
                                                : n / 8 + chunk_bytes + 8);
          EXPECT_EQ(rep.bytes_dense, ring_all_reduce_bytes(4 * static_cast<uint64_t>(numel), w));
          const int calls = pairwise ? 2 + 2 * (w - 1) : 4;
          EXPECT_EQ(rep.collectives, calls);
          EXPECT_EQ(c.calls_, calls);
        });
      }
    }
  }
}

TEST(OneBitAllReduce, WireSignsAreMostSignificantBitFirst) {
  // W = 2, 16 elements (no padding): chunk j is byte j. Non-negative at 0 and 9 (and -0 at 15,
  // which counts as >= 0): bytes 0b1000'0000 and 0b0100'0001.
  run_local_ranks(2, [&](Communicator& inner) {
    CountingCommunicator c(inner);
    OneBitAllReduce algo(c, 16);
    Vec v(16, -1.0f);
    v[0] = 2.0f;
    v[9] = 0.0f;
    v[15] = -0.0f;
    algo.all_reduce(TensorView::of(v.data(), 16));
    EXPECT_EQ(c.all_to_all_in_, (std::vector<uint8_t>{0x80, 0x41}));
  });
}

}  // namespace
}  // namespace terse

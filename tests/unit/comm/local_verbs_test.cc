// Every verb of the threads-as-ranks backend against a single-process reference, bit-exact,
// for every dtype and world sizes 1, 2, 3, 4 and 8.

#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <string>
#include <thread>
#include <tuple>

#include "comm_test_util.h"
#include "terse/comm/local_communicator.h"

namespace terse {
namespace {

using testing::Bytes;
using testing::make_input;
using testing::reference_reduce;
using testing::require_equal;
using testing::view_of;

class LocalVerbs : public ::testing::TestWithParam<std::tuple<int, DType>> {
 protected:
  int world() const { return std::get<0>(GetParam()); }
  DType dtype() const { return std::get<1>(GetParam()); }
  std::string tag(const Communicator& c, const std::string& verb, int64_t n) const {
    return verb + " n=" + std::to_string(n) + " " + dtype_name(dtype()) + " rank " +
           std::to_string(c.rank()) + "/" + std::to_string(c.size());
  }
};

const int64_t kSizes[] = {0, 1, 4097};

TEST_P(LocalVerbs, AllReduceMatchesRankOrderReference) {
  const DType dt = dtype();
  run_local_ranks(world(), [&](Communicator& c) {
    for (const int64_t n : kSizes) {
      for (const ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
        std::vector<Bytes> all;
        for (int r = 0; r < c.size(); ++r) all.push_back(make_input(dt, r, n, 1));
        const Bytes want = reference_reduce(all, dt, n, op);
        Bytes mine = all[static_cast<size_t>(c.rank())];
        c.all_reduce(view_of(mine, dt), op);
        require_equal(mine, want, tag(c, std::string("all_reduce ") + reduce_op_name(op), n));
      }
    }
  });
}

TEST_P(LocalVerbs, AllReduceIsBitIdenticalAcrossRuns) {
  const DType dt = dtype();
  std::vector<Bytes> first(static_cast<size_t>(world()));
  for (int run = 0; run < 3; ++run) {
    run_local_ranks(world(), [&](Communicator& c) {
      Bytes mine = make_input(dt, c.rank(), 777, 2);
      c.all_reduce(view_of(mine, dt));
      Bytes& keep = first[static_cast<size_t>(c.rank())];
      if (run == 0) {
        keep = mine;
      } else {
        require_equal(mine, keep, tag(c, "all_reduce rerun", 777));
      }
    });
  }
}

TEST_P(LocalVerbs, AllGather) {
  const DType dt = dtype();
  run_local_ranks(world(), [&](Communicator& c) {
    for (const int64_t n : kSizes) {
      Bytes want;
      for (int r = 0; r < c.size(); ++r) {
        const Bytes b = make_input(dt, r, n, 3);
        want.insert(want.end(), b.begin(), b.end());
      }
      Bytes in = make_input(dt, c.rank(), n, 3);
      Bytes out(want.size(), 0xAB);
      c.all_gather(view_of(in, dt), view_of(out, dt));
      require_equal(out, want, tag(c, "all_gather", n));

      // In place: `in` is this rank's chunk of `out`.
      Bytes inplace(want.size(), 0xCD);
      std::copy(in.begin(), in.end(), inplace.begin() + static_cast<long>(in.size()) * c.rank());
      TensorView whole = view_of(inplace, dt);
      c.all_gather(whole.slice(n * c.rank(), n), whole);
      require_equal(inplace, want, tag(c, "all_gather in place", n));
    }
  });
}

TEST_P(LocalVerbs, AllGatherv) {
  const DType dt = dtype();
  run_local_ranks(world(), [&](Communicator& c) {
    for (int pattern = 0; pattern < 3; ++pattern) {
      std::vector<int64_t> counts;
      for (int r = 0; r < c.size(); ++r) {
        counts.push_back(pattern == 0 ? 0 : pattern == 1 ? (r * 3 + 1) % 5 : (r == 0 ? 4097 : r));
      }
      Bytes want;
      for (int r = 0; r < c.size(); ++r) {
        const Bytes b = make_input(dt, r, counts[static_cast<size_t>(r)], 4);
        want.insert(want.end(), b.begin(), b.end());
      }
      Bytes in = make_input(dt, c.rank(), counts[static_cast<size_t>(c.rank())], 4);
      Bytes out(want.size(), 0xAB);
      c.all_gatherv(view_of(in, dt), view_of(out, dt), counts);
      require_equal(out, want, tag(c, "all_gatherv pattern " + std::to_string(pattern), 0));
    }
  });
}

TEST_P(LocalVerbs, AllToAll) {
  const DType dt = dtype();
  const size_t es = dtype_size(dt);
  run_local_ranks(world(), [&](Communicator& c) {
    const int p = c.size();
    for (const int64_t chunk : {int64_t{0}, int64_t{1}, int64_t{33}}) {
      // Chunk i of `out` is chunk rank() of rank i's input.
      Bytes want;
      for (int r = 0; r < p; ++r) {
        const Bytes b = make_input(dt, r, chunk * p, 5);
        const auto begin =
            b.begin() + static_cast<long>(chunk * c.rank() * static_cast<int64_t>(es));
        want.insert(want.end(), begin, begin + static_cast<long>(chunk * static_cast<int64_t>(es)));
      }
      Bytes in = make_input(dt, c.rank(), chunk * p, 5);
      Bytes out(in.size(), 0xAB);
      c.all_to_all(view_of(in, dt), view_of(out, dt));
      require_equal(out, want, tag(c, "all_to_all", chunk));
      // Same buffer as in and out.
      c.all_to_all(view_of(in, dt), view_of(in, dt));
      require_equal(in, want, tag(c, "all_to_all in place", chunk));
    }
  });
}

TEST_P(LocalVerbs, AllToAllv) {
  const DType dt = dtype();
  const size_t es = dtype_size(dt);
  run_local_ranks(world(), [&](Communicator& c) {
    const int p = c.size();
    // Rank s sends (s + 2 d + 1) % 4 elements to rank d; big ones for rank 0 -> 1.
    auto count = [](int s, int d) -> int64_t {
      return s == 0 && d == 1 ? 4097 : (s + 2 * d + 1) % 4;
    };
    auto inputs_of = [&](int s) {
      std::vector<int64_t> sc;
      for (int d = 0; d < p; ++d) sc.push_back(count(s, d));
      return sc;
    };
    std::vector<int64_t> send = inputs_of(c.rank()), recv;
    for (int s = 0; s < p; ++s) recv.push_back(count(s, c.rank()));
    Bytes want;
    for (int s = 0; s < p; ++s) {
      const std::vector<int64_t> sc = inputs_of(s);
      const int64_t total = std::accumulate(sc.begin(), sc.end(), int64_t{0});
      const Bytes b = make_input(dt, s, total, 6);
      const int64_t off = std::accumulate(sc.begin(), sc.begin() + c.rank(), int64_t{0});
      const auto begin = b.begin() + static_cast<long>(off * static_cast<int64_t>(es));
      want.insert(
          want.end(), begin,
          begin + static_cast<long>(sc[static_cast<size_t>(c.rank())] * static_cast<int64_t>(es)));
    }
    Bytes in = make_input(dt, c.rank(), std::accumulate(send.begin(), send.end(), int64_t{0}), 6);
    Bytes out(want.size(), 0xAB);
    c.all_to_allv(view_of(in, dt), send, view_of(out, dt), recv);
    require_equal(out, want, tag(c, "all_to_allv", 0));
  });
}

TEST_P(LocalVerbs, BroadcastFromEveryRoot) {
  const DType dt = dtype();
  run_local_ranks(world(), [&](Communicator& c) {
    for (int root = 0; root < c.size(); ++root) {
      for (const int64_t n : kSizes) {
        const Bytes want = make_input(dt, root, n, 7);
        Bytes buf = c.rank() == root ? want : Bytes(want.size(), 0xEE);
        c.broadcast(view_of(buf, dt), root);
        require_equal(buf, want, tag(c, "broadcast from " + std::to_string(root), n));
      }
    }
    c.barrier();
  });
}

INSTANTIATE_TEST_SUITE_P(Worlds, LocalVerbs,
                         ::testing::Combine(::testing::Values(1, 2, 3, 4, 8),
                                            ::testing::ValuesIn(testing::all_dtypes())),
                         [](const ::testing::TestParamInfo<std::tuple<int, DType>>& p) {
                           return "w" + std::to_string(std::get<0>(p.param)) + "_" +
                                  dtype_name(std::get<1>(p.param));
                         });

// bf16/f16 sums are accumulated in f32 and rounded once: 1 + e + e with e half an ulp of 1
// gives 1 + 2e, where rounding after each step would give 1 (ties to even).
TEST(LocalReduce, HalfPrecisionSumsRoundOnce) {
  run_local_ranks(3, [](Communicator& c) {
    BFloat16 b = to_bfloat16(c.rank() == 0 ? 1.0f : 1.0f / 256);
    c.all_reduce(TensorView::of(&b, 1));
    if (to_float(b) != 1.0f + 1.0f / 128) {
      throw std::runtime_error("bf16 sum is " + std::to_string(to_float(b)));
    }
    Half h = to_half(c.rank() == 0 ? 1.0f : 1.0f / 2048);
    c.all_reduce(TensorView::of(&h, 1));
    if (to_float(h) != 1.0f + 1.0f / 1024) {
      throw std::runtime_error("f16 sum is " + std::to_string(to_float(h)));
    }
  });
}

TEST(LocalReduce, AsyncCompletesOnlyWhenAllRanksArrive) {
  std::atomic<int> stage{0};
  run_local_ranks(2, [&](Communicator& c) {
    float x = static_cast<float>(c.rank() + 1);
    if (c.rank() == 0) {
      auto w = c.all_reduce_async(TensorView::of(&x, 1), ReduceOp::kSum);
      const bool early = w->test();
      stage = 1;
      w->wait(std::chrono::seconds(10));
      if (early) throw std::runtime_error("test() was true before rank 1 arrived");
    } else {
      while (stage.load() == 0) std::this_thread::yield();
      c.all_reduce(TensorView::of(&x, 1));
    }
    if (x != 3.0f) throw std::runtime_error("sum is " + std::to_string(x));
  });
}

TEST(LocalReduce, ManyOutstandingOpsCompleteInOrder) {
  run_local_ranks(4, [](Communicator& c) {
    std::vector<int64_t> v(16);
    std::vector<std::unique_ptr<Work>> works;
    for (int i = 0; i < 16; ++i) {
      v[static_cast<size_t>(i)] = i * 10 + c.rank();
      works.push_back(
          c.all_reduce_async(TensorView::of(&v[static_cast<size_t>(i)], 1), ReduceOp::kMax));
    }
    for (auto& w : works) w->wait();
    for (int i = 0; i < 16; ++i) {
      if (v[static_cast<size_t>(i)] != i * 10 + 3) throw std::runtime_error("wrong max");
    }
  });
}

}  // namespace
}  // namespace terse

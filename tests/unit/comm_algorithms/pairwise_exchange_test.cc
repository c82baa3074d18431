// pairwise_all_to_all_async / pairwise_all_gather_async on threads-as-ranks: the same result as
// the one-call collectives, one peer per round, and clear errors for mismatched buffers.

#include "terse/comm/algorithms/pairwise_exchange.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "terse/comm/local_communicator.h"
#include "terse/core/check.h"

namespace terse {
namespace {

using ::testing::HasSubstr;

// Element e of the chunk rank `from` sends to rank `to`.
int32_t tag(int from, int to, int64_t e) {
  return from * 100000 + to * 1000 + static_cast<int32_t>(e);
}

TEST(PairwiseExchange, AllToAllDeliversChunkJToRankJ) {
  for (int w : {1, 2, 3, 5}) {
    for (int64_t chunk : {int64_t{1}, int64_t{7}}) {
      run_local_ranks(w, [&](Communicator& c) {
        std::vector<int32_t> in(static_cast<size_t>(w * chunk)), out(in.size(), -1);
        for (int j = 0; j < w; ++j) {
          for (int64_t e = 0; e < chunk; ++e) in[j * chunk + e] = tag(c.rank(), j, e);
        }
        auto work = pairwise_all_to_all_async(c, TensorView::of(in.data(), w * chunk),
                                              TensorView::of(out.data(), w * chunk));
        while (!work->test()) {
        }
        for (int i = 0; i < w; ++i) {
          for (int64_t e = 0; e < chunk; ++e) {
            ASSERT_EQ(out[i * chunk + e], tag(i, c.rank(), e))
                << "W=" << w << " chunk " << chunk << " rank " << c.rank() << " from " << i;
          }
        }
      });
    }
  }
}

TEST(PairwiseExchange, AllGatherPutsRankIAtChunkI) {
  for (int w : {1, 2, 4, 5}) {
    run_local_ranks(w, [&](Communicator& c) {
      const int64_t n = 3;
      std::vector<uint8_t> in(n), out(static_cast<size_t>(w * n), 0);
      for (int64_t e = 0; e < n; ++e) in[e] = static_cast<uint8_t>(c.rank() * 10 + e + 1);
      pairwise_all_gather_async(c, TensorView::of(in.data(), n), TensorView::of(out.data(), w * n))
          ->wait();
      for (int i = 0; i < w; ++i) {
        for (int64_t e = 0; e < n; ++e) {
          ASSERT_EQ(out[i * n + e], i * 10 + e + 1) << "W=" << w << " rank " << c.rank();
        }
      }
    });
  }
}

TEST(PairwiseExchange, MismatchedBuffersAreInvalidArgument) {
  run_local_ranks(2, [&](Communicator& c) {
    std::vector<float> a(4), b(6);
    try {
      pairwise_all_to_all_async(c, TensorView::of(a.data(), 4), TensorView::of(b.data(), 6));
      ADD_FAILURE() << "no throw";
    } catch (const InvalidArgument& e) {
      EXPECT_THAT(e.what(), HasSubstr("in has 4 f32 and out 6 f32"));
    }
    try {
      pairwise_all_gather_async(c, TensorView::of(a.data(), 4), TensorView::of(b.data(), 6));
      ADD_FAILURE() << "no throw";
    } catch (const InvalidArgument& e) {
      EXPECT_THAT(e.what(), HasSubstr("world size (2) times in's elements"));
    }
  });
}

}  // namespace
}  // namespace terse

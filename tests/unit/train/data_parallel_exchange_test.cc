// DataParallel::set_exchange_enabled: with the exchange off, finish() leaves each rank's local
// gradient and reports nothing sent; switched back on, gradients are averaged again.

#include <gtest/gtest.h>

#include <vector>

#include "terse/comm/local_communicator.h"
#include "terse/core/error.h"
#include "terse/train/data_parallel.h"

namespace terse {
namespace {

TEST(DataParallelExchange, DisabledKeepsLocalGradientsAndSendsNothing) {
  const int w = 2;
  run_local_ranks(w, [&](Communicator& comm) {
    const auto r = static_cast<float>(comm.rank());
    std::vector<float> a(10, 0.0f), b(20, 0.0f);
    std::vector<Param> params = {Param{TensorView::of(a.data(), 10), TensorView{}, {10}, "a"},
                                 Param{TensorView::of(b.data(), 20), TensorView{}, {20}, "b"}};
    DataParallel dp(comm, params, 1.0);
    EXPECT_TRUE(dp.exchange_enabled());
    dp.set_exchange_enabled(false);
    EXPECT_FALSE(dp.exchange_enabled());
    auto fill = [&](float base) {
      for (size_t i = 0; i < dp.params().size(); ++i) {
        float* g = dp.params()[i].grad.as<float>();
        for (int64_t k = 0; k < dp.params()[i].grad.numel; ++k) {
          g[k] = base + 10.0f * r + static_cast<float>(k);
        }
        dp.mark_ready(i);
      }
    };
    for (int step = 0; step < 2; ++step) {
      fill(1.0f);
      const CommStats s = dp.finish();
      EXPECT_EQ(s.bytes_sent, 0u);
      EXPECT_EQ(s.bytes_dense, 0u);
      EXPECT_EQ(s.payload_bytes, 0u);
      EXPECT_EQ(s.payload_dense_bytes, 0u);
      EXPECT_EQ(s.time_comm_s, 0.0);
      EXPECT_EQ(dp.params()[1].grad.as<float>()[3], 1.0f + 10.0f * r + 3.0f);
      EXPECT_EQ(dp.num_ready(), 0u);
    }
    // Still checks that every gradient came.
    dp.mark_ready(0);
    EXPECT_THROW(dp.set_exchange_enabled(true), InvalidArgument);
    EXPECT_THROW(dp.finish(), InvalidArgument);
    dp.set_exchange_enabled(true);
    fill(1.0f);
    const CommStats s = dp.finish();
    EXPECT_GT(s.bytes_sent, 0u);
    EXPECT_EQ(s.payload_dense_bytes, 4u * 30u);
    // Mean over ranks 0 and 1: 1 + 5 + k.
    EXPECT_EQ(dp.params()[1].grad.as<float>()[3], 1.0f + 5.0f + 3.0f);
    EXPECT_EQ(dp.params()[0].grad.as<float>()[0], 6.0f);
  });
}

}  // namespace
}  // namespace terse

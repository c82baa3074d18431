// Failure behaviour of the threads-as-ranks backend: a missing rank gives Timeout naming it,
// within the deadline; disagreeing ranks give CommError; a throwing rank fails the others fast.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "terse/comm/local_communicator.h"
#include "terse/core/error.h"

namespace terse {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

TEST(LocalFailure, MissingRankGivesTimeoutNamingItWithinTheDeadline) {
  std::mutex mu;
  std::vector<std::string> messages(3);
  std::vector<double> elapsed(3, -1.0);
  std::string late_error;
  run_local_ranks(3, [&](Communicator& c) {
    c.set_timeout(std::chrono::milliseconds(300));
    std::vector<float> v(1000, 1.0f);
    if (c.rank() == 2) {
      // Arrives long after the others gave up: must not write into their buffers.
      std::this_thread::sleep_for(std::chrono::milliseconds(900));
      try {
        c.all_reduce(TensorView::of(v.data(), 1000));
      } catch (const CommError& e) {
        std::lock_guard<std::mutex> lk(mu);
        late_error = e.what();
      }
      return;
    }
    const auto t0 = Clock::now();
    try {
      c.all_reduce(TensorView::of(v.data(), 1000));
    } catch (const Timeout& e) {
      std::lock_guard<std::mutex> lk(mu);
      messages[static_cast<size_t>(c.rank())] = e.what();
      elapsed[static_cast<size_t>(c.rank())] = seconds_since(t0);
    }
  });
  for (int r = 0; r < 2; ++r) {
    SCOPED_TRACE(r);
    EXPECT_THAT(messages[static_cast<size_t>(r)],
                HasSubstr("all_reduce #0 of 4.0 KB (f32) on rank " + std::to_string(r)));
    EXPECT_THAT(messages[static_cast<size_t>(r)], HasSubstr("did not complete within 300 ms"));
    EXPECT_THAT(messages[static_cast<size_t>(r)], HasSubstr("ranks 0-1 arrived, rank 2 did not"));
    EXPECT_GE(elapsed[static_cast<size_t>(r)], 0.29);
    EXPECT_LT(elapsed[static_cast<size_t>(r)], 0.29 + 2.0);
  }
  EXPECT_THAT(late_error, HasSubstr("arrived too late"));
}

TEST(LocalFailure, TimeoutIsRethrownByRunLocalRanksWithTheRank) {
  try {
    run_local_ranks(4, [](Communicator& c) {
      c.set_timeout(std::chrono::milliseconds(200));
      if (c.rank() != 3) c.barrier();
    });
    FAIL() << "expected Timeout";
  } catch (const Timeout& e) {
    EXPECT_THAT(e.what(), ::testing::MatchesRegex("rank [0-2]: barrier #0 on rank [0-2] of 4.*"));
    EXPECT_THAT(e.what(), HasSubstr("ranks 0-2 arrived, rank 3 did not"));
  }
}

TEST(LocalFailure, MismatchedSizesGiveCommErrorOnEveryRank) {
  std::atomic<int> errors{0};
  std::mutex mu;
  std::string message;
  run_local_ranks(2, [&](Communicator& c) {
    std::vector<float> v(11, 0.0f);
    try {
      c.all_reduce(TensorView::of(v.data(), c.rank() == 0 ? 10 : 11));
    } catch (const CommError& e) {
      ++errors;
      std::lock_guard<std::mutex> lk(mu);
      message = e.what();
    }
  });
  EXPECT_EQ(errors.load(), 2);
  EXPECT_THAT(message, HasSubstr("rank 0 called all_reduce of 10 f32 (sum) but rank 1 called "
                                 "all_reduce of 11 f32 (sum)"));
}

TEST(LocalFailure, MismatchedVerbsAndCountsAreDetected) {
  std::atomic<int> errors{0};
  run_local_ranks(2, [&](Communicator& c) {
    float x[4] = {};
    try {
      if (c.rank() == 0) {
        c.broadcast(TensorView::of(x, 1), 0);
      } else {
        c.barrier();
      }
    } catch (const CommError&) {
      ++errors;
    }
    // all_to_allv where rank 0 sends 2 to rank 1 but rank 1 expects 1.
    try {
      if (c.rank() == 0) {
        c.all_to_allv(TensorView::of(x, 3), {1, 2}, TensorView::of(x + 3, 1), {1, 0});
      } else {
        c.all_to_allv(TensorView::of(x, 0), {0, 0}, TensorView::of(x, 1), {1, 0});
      }
    } catch (const CommError& e) {
      if (std::string(e.what()).find("rank 0 sends 2 elements to rank 1 but rank 1 expects 1") !=
          std::string::npos) {
        ++errors;
      }
    }
  });
  EXPECT_EQ(errors.load(), 4);
}

TEST(LocalFailure, ThrowingRankFailsTheOthersFastAndKeepsItsType) {
  const auto t0 = Clock::now();
  try {
    run_local_ranks(4, [](Communicator& c) {
      c.set_timeout(std::chrono::seconds(30));
      float x = 1.0f;
      if (c.rank() == 2) c.broadcast(TensorView::of(&x, 1), 7);  // bad root: InvalidArgument
      c.all_reduce(TensorView::of(&x, 1));
    });
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), ::testing::StartsWith("rank 2: broadcast on rank 2: root 7"));
  }
  EXPECT_LT(seconds_since(t0), 5.0);
}

TEST(LocalFailure, WaitRejectsNonPositiveTimeout) {
  run_local_ranks(1, [](Communicator& c) {
    auto w = c.barrier_async();
    EXPECT_TRUE(w->test());
    EXPECT_THROW(w->wait(std::chrono::milliseconds(0)), InvalidArgument);
    w->wait();
  });
}

}  // namespace
}  // namespace terse

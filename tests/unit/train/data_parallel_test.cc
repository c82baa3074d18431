#include "terse/train/data_parallel.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "terse/comm/local_communicator.h"
#include "terse/core/error.h"
#include "terse/core/philox.h"

namespace terse {
namespace {

constexpr double kMB = 1024.0 * 1024.0;

// Runs fn(rank, comm) on one thread per rank; rethrows the first failure.
void run_ranks(int n, const std::function<void(int, Communicator&)>& fn) {
  auto comms = make_local_communicators(n);
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      try {
        fn(r, *comms[static_cast<size_t>(r)]);
      } catch (...) {
        errors[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

// A communicator that records which buffers were all-reduced, in which order, and leaves the
// data as it is (as if every rank held the same values).
class RecordingComm : public Communicator {
 public:
  explicit RecordingComm(int size) : size_(size) {}
  int rank() const override { return 0; }
  int size() const override { return size_; }
  const char* backend() const override { return "recording"; }

  struct DoneWork : Work {
    bool test() override { return true; }
    void wait(std::chrono::milliseconds) override {}
    void wait() override {}
  };
  std::unique_ptr<Work> all_reduce_async(TensorView inout, ReduceOp) override {
    reduced.push_back(inout.data);
    // The sum over `size_` identical ranks.
    float* p = inout.as<float>();
    for (int64_t i = 0; i < inout.numel; ++i) p[i] *= static_cast<float>(size_);
    return std::make_unique<DoneWork>();
  }
  std::unique_ptr<Work> all_gather_async(TensorView, TensorView) override { return done(); }
  std::unique_ptr<Work> all_gatherv_async(TensorView, TensorView,
                                          const std::vector<int64_t>&) override {
    return done();
  }
  std::unique_ptr<Work> all_to_all_async(TensorView, TensorView) override { return done(); }
  std::unique_ptr<Work> all_to_allv_async(TensorView, const std::vector<int64_t>&, TensorView,
                                          const std::vector<int64_t>&) override {
    return done();
  }
  std::unique_ptr<Work> broadcast_async(TensorView, int) override {
    ++broadcasts;
    return done();
  }
  std::unique_ptr<Work> barrier_async() override { return done(); }

  std::vector<void*> reduced;
  int broadcasts = 0;

 private:
  static std::unique_ptr<Work> done() { return std::make_unique<DoneWork>(); }
  int size_;
};

struct Model {
  std::vector<std::vector<float>> values;
  std::vector<Param> params;
  explicit Model(const std::vector<int64_t>& sizes) {
    values.resize(sizes.size());
    for (size_t i = 0; i < sizes.size(); ++i) {
      values[i].assign(static_cast<size_t>(sizes[i]), 0.0f);
      params.push_back(Param{TensorView::of(values[i].data(), sizes[i]),
                             TensorView{},
                             {sizes[i]},
                             "layer" + std::to_string(i)});
    }
  }
};

// Four params of 100 f32 (400 B); cap 1000 B: buckets {3, 2, 1} and {0}.
const std::vector<int64_t> kSizes = {100, 100, 100, 100};
const double kCap = 1000.0 / kMB;

TEST(DataParallel, GradViewsPointIntoBuckets) {
  RecordingComm comm(2);
  Model m(kSizes);
  DataParallel dp(comm, m.params, kCap);
  ASSERT_EQ(dp.plan().num_buckets(), 2u);
  const auto* b0 = static_cast<const float*>(dp.bucket_view(0).data);
  const auto* b1 = static_cast<const float*>(dp.bucket_view(1).data);
  EXPECT_EQ(dp.params()[3].grad.data, b0);
  EXPECT_EQ(dp.params()[2].grad.data, b0 + 100);
  EXPECT_EQ(dp.params()[1].grad.data, b0 + 200);
  EXPECT_EQ(dp.params()[0].grad.data, b1);
  EXPECT_EQ(dp.params()[0].grad.numel, 100);
  EXPECT_EQ(dp.params()[0].value.data, m.values[0].data());
  EXPECT_EQ(dp.params()[2].name, "layer2");
}

TEST(DataParallel, BucketStartsAsSoonAsItIsReadyAndInOrder) {
  RecordingComm comm(2);
  Model m(kSizes);
  DataParallel dp(comm, m.params, kCap);
  const void* b0 = dp.bucket_view(0).data;
  const void* b1 = dp.bucket_view(1).data;
  // Bucket 1 (param 0) completes first, but must wait for bucket 0: every rank issues the
  // collectives in bucket order.
  dp.mark_ready(0);
  EXPECT_TRUE(comm.reduced.empty());
  dp.mark_ready(3);
  dp.mark_ready(2);
  EXPECT_TRUE(comm.reduced.empty());
  dp.mark_ready(1);  // completes bucket 0: both start now, before finish()
  ASSERT_EQ(comm.reduced.size(), 2u);
  EXPECT_EQ(comm.reduced[0], b0);
  EXPECT_EQ(comm.reduced[1], b1);

  // Reverse registration order (what backward does): bucket 0 starts after params 3, 2, 1.
  dp.finish();
  comm.reduced.clear();
  dp.mark_ready(3);
  dp.mark_ready(2);
  EXPECT_TRUE(comm.reduced.empty());
  dp.mark_ready(1);
  ASSERT_EQ(comm.reduced.size(), 1u);
  EXPECT_EQ(comm.reduced[0], b0);
  dp.mark_ready(0);
  ASSERT_EQ(comm.reduced.size(), 2u);
  EXPECT_EQ(comm.reduced[1], b1);
  dp.finish();
}

TEST(DataParallel, StatsFollowRingFormula) {
  RecordingComm comm(4);
  Model m({1000, 24});
  DataParallel dp(comm, m.params, 25.0);
  dp.mark_ready(0);
  dp.mark_ready(1);
  const CommStats s = dp.finish();
  // 2 (N-1)/N * 4 * numel = 2 * 3/4 * 4 * 1024 = 6144.
  EXPECT_EQ(s.bytes_dense, 6144u);
  EXPECT_EQ(s.bytes_sent, 6144u);
  EXPECT_GE(s.time_comm_s, 0.0);

  RecordingComm one(1);
  Model m1({1000});
  DataParallel dp1(one, m1.params, 25.0);
  dp1.mark_ready(0);
  EXPECT_EQ(dp1.finish().bytes_dense, 0u);
}

TEST(DataParallel, MarkedTwiceNamesParameter) {
  RecordingComm comm(2);
  Model m(kSizes);
  DataParallel dp(comm, m.params, kCap);
  dp.mark_ready(2);
  try {
    dp.mark_ready(2);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("'layer2'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("twice"), std::string::npos) << e.what();
  }
  EXPECT_THROW(dp.mark_ready(4), InvalidArgument);
}

TEST(DataParallel, MissingGradientAtFinishNamesParameterAndResets) {
  RecordingComm comm(2);
  Model m(kSizes);
  DataParallel dp(comm, m.params, kCap);
  dp.mark_ready(3);
  dp.mark_ready(2);
  dp.mark_ready(0);
  try {
    dp.finish();
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("'layer1'"), std::string::npos) << e.what();
  }
  // Readiness was reset: a full step works again.
  EXPECT_EQ(dp.num_ready(), 0u);
  for (size_t i = 0; i < 4; ++i) dp.mark_ready(i);
  EXPECT_NO_THROW(dp.finish());
}

TEST(DataParallel, RejectsShapeMismatch) {
  RecordingComm comm(2);
  Model m({10});
  m.params[0].shape = {3, 4};
  EXPECT_THROW(DataParallel(comm, m.params, 25.0), InvalidArgument);
}

// Gradient of param i on rank r, element j: small integers, so sums are exact in any order.
float int_grad(int r, size_t i, int64_t j) {
  return static_cast<float>((r + 1) * 3 + static_cast<int64_t>(i) * 5 + j % 7);
}

TEST(DataParallel, AveragesLikeOneProcess) {
  constexpr int kWorld = 3;
  const std::vector<int64_t> sizes = {37, 100, 3, 250, 64};
  const double cap = 400.0 / kMB;  // buckets {4, 3}, {2, 1}, {0}
  // Reference: the mean over ranks computed in one process, sum in rank order then divide.
  std::vector<std::vector<float>> want(sizes.size());
  std::vector<std::vector<float>> want_random(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    for (int64_t j = 0; j < sizes[i]; ++j) {
      float s = 0, sr = 0;
      for (int r = 0; r < kWorld; ++r) {
        s += int_grad(r, i, j);
        PhiloxStream rng(42, static_cast<uint64_t>(r * 1000) + i);
        for (int64_t k = 0; k < j; ++k) rng.uniform();
        sr += rng.uniform() - 0.5f;
      }
      want[i].push_back(s / kWorld);
      want_random[i].push_back(sr / kWorld);
    }
  }
  std::mutex mu;
  std::vector<std::vector<std::vector<float>>> got(kWorld), got_random(kWorld);
  size_t buckets = 0;
  run_ranks(kWorld, [&](int rank, Communicator& comm) {
    Model m(sizes);
    DataParallel dp(comm, m.params, cap);
    for (int step = 0; step < 2; ++step) {
      // Ranks mark in different orders: rank 1 forward, the others backward.
      for (size_t k = 0; k < sizes.size(); ++k) {
        const size_t i = rank == 1 ? k : sizes.size() - 1 - k;
        float* g = dp.params()[i].grad.as<float>();
        PhiloxStream rng(42, static_cast<uint64_t>(rank * 1000) + i);
        for (int64_t j = 0; j < sizes[i]; ++j) {
          g[j] = step == 0 ? int_grad(rank, i, j) : rng.uniform() - 0.5f;
        }
        dp.mark_ready(i);
      }
      dp.finish();
      std::vector<std::vector<float>> mine;
      for (size_t i = 0; i < sizes.size(); ++i) {
        const float* g = dp.params()[i].grad.as<float>();
        mine.emplace_back(g, g + sizes[i]);
      }
      std::lock_guard<std::mutex> lock(mu);
      (step == 0 ? got : got_random)[static_cast<size_t>(rank)] = mine;
      buckets = dp.plan().num_buckets();
    }
  });
  EXPECT_GE(buckets, 3u);
  for (int r = 0; r < kWorld; ++r) {
    for (size_t i = 0; i < sizes.size(); ++i) {
      EXPECT_EQ(got[static_cast<size_t>(r)][i], want[i]) << "rank " << r << " param " << i;
      for (int64_t j = 0; j < sizes[i]; ++j) {
        EXPECT_NEAR(got_random[static_cast<size_t>(r)][i][static_cast<size_t>(j)],
                    want_random[i][static_cast<size_t>(j)], 1e-6f);
      }
    }
  }
}

TEST(DataParallel, AveragesBf16Bucket) {
  constexpr int kWorld = 2;
  std::vector<float> result;
  std::mutex mu;
  run_ranks(kWorld, [&](int rank, Communicator& comm) {
    std::vector<BFloat16> value(8);
    std::vector<Param> params = {Param{TensorView::of(value.data(), 8), {}, {8}, "w"}};
    DataParallel dp(comm, params, 25.0);
    EXPECT_EQ(dp.bucket_view(0).dtype, DType::kBF16);
    BFloat16* g = dp.params()[0].grad.as<BFloat16>();
    for (int j = 0; j < 8; ++j) g[j] = to_bfloat16(static_cast<float>(rank == 0 ? j : 3 * j));
    dp.mark_ready(0);
    dp.finish();
    if (rank == 1) {
      std::lock_guard<std::mutex> lock(mu);
      for (int j = 0; j < 8; ++j) result.push_back(to_float(g[j]));
    }
  });
  for (int j = 0; j < 8; ++j) EXPECT_EQ(result[static_cast<size_t>(j)], 2.0f * j);
}

TEST(DataParallel, BroadcastParametersCopiesRankZero) {
  constexpr int kWorld = 3;
  std::vector<std::vector<float>> seen(kWorld);
  run_ranks(kWorld, [&](int rank, Communicator& comm) {
    Model m({5, 7});
    for (auto& v : m.values) {
      for (size_t j = 0; j < v.size(); ++j) v[j] = static_cast<float>(rank * 100 + j);
    }
    DataParallel dp(comm, m.params, 25.0);
    dp.broadcast_parameters();
    std::vector<float> all(m.values[0]);
    all.insert(all.end(), m.values[1].begin(), m.values[1].end());
    seen[static_cast<size_t>(rank)] = all;
  });
  for (int r = 0; r < kWorld; ++r) {
    ASSERT_EQ(seen[static_cast<size_t>(r)].size(), 12u);
    EXPECT_EQ(seen[static_cast<size_t>(r)], seen[0]);
    EXPECT_EQ(seen[static_cast<size_t>(r)][6], 1.0f);  // rank 0's value of element 1 of w1
  }
}

// The broadcast before training waits for the last rank to start; that wait is no step's
// communication. It used to land in the first step's time_comm_s, above the step's wall time.
TEST(DataParallel, BroadcastWaitIsNotCountedInTheFirstStep) {
  std::vector<double> comm_s(2);
  run_ranks(2, [&](int rank, Communicator& comm) {
    Model m({5, 7});
    DataParallel dp(comm, m.params, 25.0);
    if (rank == 1) std::this_thread::sleep_for(std::chrono::milliseconds(150));
    dp.broadcast_parameters();  // rank 0 waits here for rank 1
    dp.mark_ready(0);
    dp.mark_ready(1);
    comm_s[static_cast<size_t>(rank)] = dp.finish().time_comm_s;
  });
  EXPECT_LT(comm_s[0], 0.1);
  EXPECT_LT(comm_s[1], 0.1);
}

TEST(DataParallel, FinishTimesOutWhenAPeerNeverSends) {
  constexpr int kWorld = 2;
  bool timed_out = false;
  run_ranks(kWorld, [&](int rank, Communicator& comm) {
    if (rank == 1) return;  // this rank never runs backward
    comm.set_timeout(std::chrono::milliseconds(200));
    Model m({16});
    DataParallel dp(comm, m.params, 25.0);
    dp.mark_ready(0);
    try {
      dp.finish();
    } catch (const Timeout&) {
      timed_out = true;
    }
  });
  EXPECT_TRUE(timed_out);
}

}  // namespace
}  // namespace terse

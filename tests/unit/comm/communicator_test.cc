// Argument validation, the timeout setting and the backend factory.

#include "terse/comm/communicator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <climits>
#include <cstdlib>
#include <string>

#include "terse/comm/local_communicator.h"
#include "terse/comm/nccl_communicator.h"
#include "terse/core/error.h"

namespace terse {
namespace {

using ::testing::HasSubstr;

// Runs fn, expects InvalidArgument and returns its message.
template <typename Fn>
std::string invalid_argument_message(Fn&& fn) {
  try {
    fn();
  } catch (const InvalidArgument& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception type: ") + e.what();
  }
  return "no exception";
}

class Validation : public ::testing::Test {
 protected:
  // Rank 1 of a world of 3: every call here must throw before it reaches the rendezvous, so
  // nothing ever waits for ranks 0 and 2.
  void SetUp() override { comms_ = make_local_communicators(3); }
  Communicator& c() { return *comms_[1]; }
  std::vector<std::unique_ptr<Communicator>> comms_;
  float a_[12] = {};
  float b_[12] = {};
  int32_t i_[12] = {};
};

TEST_F(Validation, AllReduce) {
  EXPECT_THAT(invalid_argument_message(
                  [&] { c().all_reduce(TensorView(a_, 4, DType::kF32, Device::cuda(0))); }),
              HasSubstr("inout is on cuda:0"));
  EXPECT_THAT(
      invalid_argument_message([&] { c().all_reduce(TensorView(nullptr, 4, DType::kF32)); }),
      HasSubstr("4 elements but a null data pointer"));
  EXPECT_THAT(invalid_argument_message([&] { c().all_reduce(TensorView(a_, -1, DType::kF32)); }),
              HasSubstr("negative element count -1"));
  EXPECT_THAT(invalid_argument_message(
                  [&] { c().all_reduce(TensorView::of(a_, 4), static_cast<ReduceOp>(9)); }),
              HasSubstr("unknown reduce op code 9"));
}

TEST_F(Validation, AllGather) {
  EXPECT_THAT(invalid_argument_message(
                  [&] { c().all_gather(TensorView::of(a_, 4), TensorView::of(b_, 11)); }),
              HasSubstr("out has 11 elements but must hold 3 ranks x 4 = 12"));
  EXPECT_THAT(invalid_argument_message(
                  [&] { c().all_gather(TensorView::of(a_, 4), TensorView::of(i_, 12)); }),
              HasSubstr("in is f32 but out is i32"));
}

TEST_F(Validation, AllGatherv) {
  EXPECT_THAT(invalid_argument_message([&] {
                c().all_gatherv(TensorView::of(a_, 2), TensorView::of(b_, 4), {2, 2});
              }),
              HasSubstr("counts has 2 entries but the communicator has 3 ranks"));
  EXPECT_THAT(invalid_argument_message([&] {
                c().all_gatherv(TensorView::of(a_, 2), TensorView::of(b_, 4), {4, 2, -2});
              }),
              HasSubstr("counts[2] is -2"));
  EXPECT_THAT(invalid_argument_message([&] {
                c().all_gatherv(TensorView::of(a_, 3), TensorView::of(b_, 6), {2, 2, 2});
              }),
              HasSubstr("in has 3 elements but counts[1] is 2"));
  EXPECT_THAT(invalid_argument_message([&] {
                c().all_gatherv(TensorView::of(a_, 2), TensorView::of(b_, 7), {2, 2, 2});
              }),
              HasSubstr("out has 7 elements but the counts sum to 6"));
  EXPECT_THAT(
      invalid_argument_message([&] {
        c().all_gatherv(TensorView::of(a_, 2), TensorView::of(b_, 4), {INT64_MAX, 2, INT64_MAX});
      }),
      HasSubstr("sums past 2^63"));
}

TEST_F(Validation, AllToAll) {
  EXPECT_THAT(invalid_argument_message(
                  [&] { c().all_to_all(TensorView::of(a_, 10), TensorView::of(b_, 10)); }),
              HasSubstr("10 elements do not split into 3 equal chunks"));
  EXPECT_THAT(invalid_argument_message(
                  [&] { c().all_to_all(TensorView::of(a_, 6), TensorView::of(b_, 9)); }),
              HasSubstr("in has 6 elements but out has 9"));
}

TEST_F(Validation, AllToAllv) {
  EXPECT_THAT(invalid_argument_message([&] {
                c().all_to_allv(TensorView::of(a_, 5), {1, 1, 1}, TensorView::of(b_, 3), {1, 1, 1});
              }),
              HasSubstr("in has 5 elements but send_counts sum to 3"));
  EXPECT_THAT(
      invalid_argument_message([&] {
        c().all_to_allv(TensorView::of(a_, 3), {1, 1, 1}, TensorView::of(b_, 3), {1, 3, -1});
      }),
      HasSubstr("recv_counts[2] is -1"));
  EXPECT_THAT(invalid_argument_message([&] {
                c().all_to_allv(TensorView::of(a_, 3), {1, 1, 1}, TensorView::of(b_, 4), {1, 1, 1});
              }),
              HasSubstr("out has 4 elements but recv_counts sum to 3"));
}

TEST_F(Validation, BroadcastRoot) {
  EXPECT_THAT(invalid_argument_message([&] { c().broadcast(TensorView::of(a_, 4), 3); }),
              HasSubstr("root 3 is outside [0, 3)"));
  EXPECT_THAT(invalid_argument_message([&] { c().broadcast(TensorView::of(a_, 4), -1); }),
              HasSubstr("root -1 is outside [0, 3)"));
}

TEST_F(Validation, TimeoutMustBePositive) {
  EXPECT_THAT(invalid_argument_message([&] { c().set_timeout(std::chrono::milliseconds(0)); }),
              HasSubstr("must be > 0 ms, got 0 ms"));
  EXPECT_THROW(c().set_timeout(std::chrono::milliseconds(-5)), InvalidArgument);
  c().set_timeout(std::chrono::milliseconds(1500));
  EXPECT_EQ(c().timeout().count(), 1500);
}

// Restores TERSE_TIMEOUT_S after a test changes it.
class TimeoutEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* v = std::getenv("TERSE_TIMEOUT_S");
    had_ = v != nullptr;
    if (had_) saved_ = v;
  }
  void TearDown() override {
    if (had_) {
      setenv("TERSE_TIMEOUT_S", saved_.c_str(), 1);
    } else {
      unsetenv("TERSE_TIMEOUT_S");
    }
  }
  bool had_ = false;
  std::string saved_;
};

TEST_F(TimeoutEnv, DefaultIsSixtySeconds) {
  unsetenv("TERSE_TIMEOUT_S");
  EXPECT_EQ(make_communicator("local")->timeout().count(), 60000);
}

TEST_F(TimeoutEnv, ReadsSecondsFromEnvironment) {
  setenv("TERSE_TIMEOUT_S", "2.5", 1);
  EXPECT_EQ(make_communicator("local")->timeout().count(), 2500);
  setenv("TERSE_TIMEOUT_S", "30", 1);
  EXPECT_EQ(make_local_communicators(2)[1]->timeout().count(), 30000);
}

TEST_F(TimeoutEnv, RejectsMalformedValues) {
  for (const char* bad : {"abc", "0", "-3", "5s", "inf"}) {
    setenv("TERSE_TIMEOUT_S", bad, 1);
    EXPECT_THAT(
        invalid_argument_message([] { make_communicator("local"); }),
        HasSubstr(std::string("TERSE_TIMEOUT_S must be a positive number of seconds, got '") + bad +
                  "'"))
        << bad;
  }
}

TEST(Factory, LocalIsAWorldOfOne) {
  auto c = make_communicator("local");
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->size(), 1);
  EXPECT_STREQ(c->backend(), "local");
  double x = 4.25;
  c->all_reduce(TensorView::of(&x, 1));
  EXPECT_EQ(x, 4.25);
}

TEST(Factory, UnknownBackendSaysWhatExists) {
  EXPECT_THAT(invalid_argument_message([] { make_communicator("gloo"); }),
              HasSubstr("unknown communicator backend 'gloo'"));
  EXPECT_THROW(make_local_communicators(0), InvalidArgument);
}

TEST(Factory, MpiAvailabilityMatchesTheBuild) {
#ifdef TERSE_TEST_HAVE_MPI
  EXPECT_TRUE(mpi_available());
  EXPECT_THAT(mpi_library_version(), HasSubstr("MPI"));
  EXPECT_EQ(mpi_library_version().find('\n'), std::string::npos);
#else
  EXPECT_FALSE(mpi_available());
  EXPECT_EQ(mpi_library_version(), "");
  EXPECT_THAT(invalid_argument_message([] { make_communicator("mpi"); }),
              HasSubstr("apt-get install libopenmpi-dev openmpi-bin"));
#endif
}

TEST(Factory, NcclAvailabilityMatchesTheBuild) {
#ifdef TERSE_TEST_HAVE_NCCL
  EXPECT_TRUE(nccl_available());
  EXPECT_EQ(nccl_library_version().substr(0, 2), "2.") << nccl_library_version();
#else
  EXPECT_FALSE(nccl_available());
  EXPECT_EQ(nccl_library_version(), "");
  const std::string message = invalid_argument_message([] { make_communicator("nccl"); });
  EXPECT_THAT(message, HasSubstr("terse was built without NCCL"));
  EXPECT_THAT(message, HasSubstr("-DTERSE_NCCL=ON"));
#endif
}

TEST(Environment, LaunchDetectionAndLocalRanks) {
  // The unit tests do not run under mpirun; the variables decide.
  const bool under = launched_under_mpi();
  EXPECT_EQ(under, std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr ||
                       std::getenv("PMI_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr);
  const char* saved = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  const std::string keep = saved ? saved : "";
  setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "6", 1);
  EXPECT_EQ(local_rank_count(), 6);
  setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "x", 1);
  EXPECT_EQ(local_rank_count(), 1);
  unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  EXPECT_EQ(local_rank_count(), 1);
  if (saved) setenv("OMPI_COMM_WORLD_LOCAL_SIZE", keep.c_str(), 1);
  EXPECT_STREQ(reduce_op_name(ReduceOp::kMax), "max");
}

}  // namespace
}  // namespace terse

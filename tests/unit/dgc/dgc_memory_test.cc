#include "terse/compress/dgc/dgc_memory.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "terse/core/error.h"

namespace terse {
namespace {

TEST(DgcMemory, CompensateMatchesHandComputed) {
  std::vector<float> u = {1.0f, -2.0f, 0.5f};
  std::vector<float> v = {0.0f, 1.0f, -1.0f};
  const std::vector<float> g = {0.5f, 0.5f, -1.0f};
  DgcMemoryOptions o;
  o.momentum = 0.5;
  DgcMemory::compensate(u.data(), v.data(), g.data(), 3, o);
  // U = 0.5 U + g; V += U.
  EXPECT_EQ(u, (std::vector<float>{1.0f, -0.5f, -0.75f}));
  EXPECT_EQ(v, (std::vector<float>{1.0f, 0.5f, -1.75f}));
}

TEST(DgcMemory, NesterovMatchesHandComputed) {
  std::vector<float> u = {1.0f, -2.0f};
  std::vector<float> v = {0.0f, 1.0f};
  const std::vector<float> g = {1.0f, 0.5f};
  DgcMemoryOptions o;
  o.momentum = 0.5;
  o.nesterov = true;
  DgcMemory::compensate(u.data(), v.data(), g.data(), 2, o);
  // U = 0.5 (U + g); V += U + g.
  EXPECT_EQ(u, (std::vector<float>{1.0f, -0.75f}));
  EXPECT_EQ(v, (std::vector<float>{2.0f, 0.75f}));
}

TEST(DgcMemory, StepMasksExactlyTheSelectedPositions) {
  // 8 elements at density 0.25 (whole-tensor sample): k = 2, the two largest |V| after
  // compensation. U starts at 1, V at 0, g as below, m = 0.5 -> U = 0.5 + g, V = U.
  const std::vector<float> g0 = {0.0f, 3.0f, -0.5f, 0.1f, -4.0f, 0.2f, 0.3f, -0.1f};
  std::vector<float> g = g0;
  std::vector<float> u(8, 1.0f), v(8, 0.0f);
  DgcMemoryOptions o;
  o.momentum = 0.5;
  const SparseSelection s = DgcMemory::step(u.data(), v.data(), g.data(), 8, 0.25, 0, o);
  EXPECT_EQ(s.indices, (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(s.values, (std::vector<float>{3.5f, -3.5f}));
  for (int i = 0; i < 8; ++i) {
    const bool sel = i == 1 || i == 4;
    const float expect = sel ? 0.0f : 0.5f + g0[static_cast<size_t>(i)];
    EXPECT_EQ(u[static_cast<size_t>(i)], expect) << i;
    EXPECT_EQ(v[static_cast<size_t>(i)], expect) << i;
  }
  EXPECT_EQ(g, g0);  // no clipping: g untouched
}

TEST(DgcMemory, MaskingOffKeepsMomentum) {
  std::vector<float> u = {1.0f, 2.0f, 3.0f}, v = {4.0f, 5.0f, 6.0f};
  SparseSelection s;
  s.indices = {0, 2};
  DgcMemoryOptions o;
  o.momentum_masking = false;
  DgcMemory::mask(u.data(), v.data(), 3, s, o);
  EXPECT_EQ(u, (std::vector<float>{1.0f, 2.0f, 3.0f}));
  EXPECT_EQ(v, (std::vector<float>{0.0f, 5.0f, 0.0f}));
  o.momentum_masking = true;
  DgcMemory::mask(u.data(), v.data(), 3, s, o);
  EXPECT_EQ(u, (std::vector<float>{0.0f, 2.0f, 0.0f}));
}

TEST(DgcMemory, MaskRejectsOutOfRangeIndexWithoutWriting) {
  std::vector<float> u = {1.0f, 2.0f}, v = {3.0f, 4.0f};
  SparseSelection s;
  s.indices = {0, 2};
  EXPECT_THROW(DgcMemory::mask(u.data(), v.data(), 2, s, {}), InvalidArgument);
  EXPECT_EQ(v, (std::vector<float>{3.0f, 4.0f}));
}

TEST(DgcMemory, ClipScalesByInverseSqrtWorkers) {
  std::vector<float> g = {3.0f, 4.0f};  // norm 5
  // max_norm 4 over 4 workers -> limit 2.
  const double norm = DgcMemory::clip(g.data(), 2, 4.0, 4);
  EXPECT_DOUBLE_EQ(norm, 5.0);
  EXPECT_NEAR(std::hypot(g[0], g[1]), 2.0, 1e-5);
  EXPECT_NEAR(g[0] / g[1], 0.75, 1e-6);
  std::vector<float> small = {0.3f, 0.4f};  // norm 0.5 < limit: untouched
  DgcMemory::clip(small.data(), 2, 4.0, 4);
  EXPECT_EQ(small, (std::vector<float>{0.3f, 0.4f}));
  EXPECT_THROW(DgcMemory::clip(g.data(), 2, 0.0, 4), InvalidArgument);
  EXPECT_THROW(DgcMemory::clip(g.data(), 2, 1.0, 0), InvalidArgument);
  std::vector<float> bad = {INFINITY, 1.0f};
  EXPECT_THROW(DgcMemory::clip(bad.data(), 2, 1.0, 1), NumericalError);
}

TEST(DgcMemory, StepClipsBeforeCompensating) {
  std::vector<float> g = {3.0f, 4.0f, 0.0f, 0.0f};
  std::vector<float> u(4, 0.0f), v(4, 0.0f);
  DgcMemoryOptions o;
  o.clip_max_norm = 1.0;
  o.num_workers = 1;
  const SparseSelection s = DgcMemory::step(u.data(), v.data(), g.data(), 4, 0.25, 0, o);
  ASSERT_EQ(s.indices, (std::vector<int64_t>{1}));
  EXPECT_NEAR(s.values[0], 0.8f, 1e-5);
  EXPECT_NEAR(v[0], 0.6f, 1e-5);
}

// select_options.threads splits the compensation (and the selection): the same U, V and
// selection for any count (1.5M elements: threads = 3 gives 2 parts of at least 2^19, the last
// one shorter), and a count below 1 is refused before U or V change.
TEST(DgcMemory, StepGivesTheSameBitsForAnyThreadCount) {
  const int64_t n = 1'500'001;
  std::vector<float> g0(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    g0[static_cast<size_t>(i)] = std::sin(0.001f * static_cast<float>(i));
  DgcMemoryOptions o;
  o.momentum = 0.9;
  auto run = [&](int threads, std::vector<float>& u, std::vector<float>& v) {
    u.assign(static_cast<size_t>(n), 0.25f);
    v.assign(static_cast<size_t>(n), -0.5f);
    std::vector<float> g = g0;
    DgcSelectOptions so;
    so.threads = threads;
    return DgcMemory::step(u.data(), v.data(), g.data(), n, 0.001, 3, o, so);
  };
  std::vector<float> u1, v1, u3, v3;
  const SparseSelection s1 = run(1, u1, v1);
  const SparseSelection s3 = run(3, u3, v3);
  EXPECT_EQ(u1, u3);
  EXPECT_EQ(v1, v3);
  EXPECT_EQ(s1.indices, s3.indices);
  EXPECT_EQ(s1.values, s3.values);
  EXPECT_FALSE(s1.indices.empty());

  std::vector<float> u(4, 1.0f), v(4, 2.0f), g(4, 3.0f);
  DgcSelectOptions bad;
  bad.threads = 0;
  EXPECT_THROW(DgcMemory::step(u.data(), v.data(), g.data(), 4, 0.5, 0, o, bad), InvalidArgument);
  EXPECT_EQ(u, std::vector<float>(4, 1.0f));
  EXPECT_EQ(v, std::vector<float>(4, 2.0f));
}

TEST(DgcMemory, DenseMomentum) {
  std::vector<float> u = {1.0f}, out = {0.0f};
  const std::vector<float> g = {2.0f};
  DgcMemoryOptions o;
  o.momentum = 0.5;
  dgc_dense_momentum(u.data(), g.data(), out.data(), 1, o);
  EXPECT_EQ(u[0], 2.5f);
  EXPECT_EQ(out[0], 2.5f);
  o.nesterov = true;
  dgc_dense_momentum(u.data(), g.data(), out.data(), 1, o);
  EXPECT_EQ(u[0], 2.25f);
  EXPECT_EQ(out[0], 4.25f);
  o.momentum = 1.0;
  EXPECT_THROW(dgc_dense_momentum(u.data(), g.data(), out.data(), 1, o), InvalidArgument);
}

TEST(DgcPolicy, OneDimAndSmallTensorsGoDense) {
  EXPECT_TRUE(dgc_goes_dense(1, 1'000'000));
  EXPECT_TRUE(dgc_goes_dense(4, 1023));
  EXPECT_FALSE(dgc_goes_dense(4, 1024));
  EXPECT_FALSE(dgc_goes_dense(2, 10, 0));
  EXPECT_THROW(dgc_goes_dense(-1, 10), InvalidArgument);
}

}  // namespace
}  // namespace terse

// 0/1 Adam (ZeroOneAdam) on threads-as-ranks: its schedule of dense, 1-bit and local steps and
// syncs, every rank's parameters bit for bit against a single-process reference of all ranks
// (W in {1, 2, 4}), exact resume in the local phase, options, NaN, accounting.

#include "terse/train/zero_one_adam.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "one_bit_mask_check.h"
#include "one_bit_reference.h"
#include "terse/comm/local_communicator.h"
#include "terse/core/error.h"
#include "terse/train/communicating_optimizer.h"

namespace terse {
namespace {

using test::RefAllReduce;
using ::testing::HasSubstr;
using Vec = std::vector<float>;

// Group 0: {37, 100} elements (lr 0.01), group 1: {5, 64} (lr 0.02); 206 in all.
constexpr int64_t kTotal = 206;
constexpr int64_t kGroup0 = 137;
const std::vector<std::vector<int64_t>> kGroups = {{37, 100}, {5, 64}};

struct Model {
  std::vector<Vec> values, grads;
  Model() {
    for (const auto& g : kGroups) {
      for (int64_t n : g) {
        Vec v(static_cast<size_t>(n));
        for (size_t i = 0; i < v.size(); ++i) v[i] = 0.01f * static_cast<float>(i % 13) - 0.04f;
        values.push_back(v);
        grads.push_back(Vec(static_cast<size_t>(n), 0.0f));
      }
    }
  }
  std::vector<ParamGroup> groups() {
    std::vector<ParamGroup> out(kGroups.size());
    size_t k = 0;
    for (size_t g = 0; g < kGroups.size(); ++g) {
      for (size_t i = 0; i < kGroups[g].size(); ++i, ++k) {
        const auto n = static_cast<int64_t>(values[k].size());
        out[g].params.push_back(Param{TensorView::of(values[k].data(), n),
                                      TensorView::of(grads[k].data(), n),
                                      {n},
                                      "p" + std::to_string(k)});
      }
    }
    out[1].overrides["lr"] = "0.02";
    return out;
  }
  Vec flat() const {
    Vec f;
    for (const auto& v : values) f.insert(f.end(), v.begin(), v.end());
    return f;
  }
  void set(std::vector<Vec>* dst, const Vec& flat_src) {
    size_t o = 0;
    for (auto& g : *dst) {
      for (float& x : g) x = flat_src[o++];
    }
  }
};

Vec local_grad(int rank, int64_t t) {
  std::mt19937 gen(static_cast<unsigned>(7919 * rank + t));
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  Vec g(kTotal);
  for (float& x : g) x = d(gen) + 0.2f * static_cast<float>(rank) - 0.1f;
  return g;
}

Vec mean_grad(int w, int64_t t) {
  Vec s(kTotal, 0.0f);
  for (int r = 0; r < w; ++r) {
    const Vec g = local_grad(r, t);
    for (size_t i = 0; i < s.size(); ++i) s[i] += g[i];
  }
  for (float& x : s) x /= static_cast<float>(w);
  return s;
}

// Small scalers so 26 steps cover every phase: dense steps {1, 2, 4, 6, 8, 12}, 1-bit steps
// {3, 5, 7, 9, 10, 11}, local phase from 13 with syncs {13, 14, 15, 16, 18, 20, 24}.
constexpr int64_t kFreeze = 12, kSteps = 26;
const std::set<int64_t> kDense = {1, 2, 4, 6, 8, 12};
const std::set<int64_t> kCommunicating = {3, 5, 7, 9, 10, 11, 13, 14, 15, 16, 18, 20, 24};

OptionMap options(double wd = 0.01) {
  return {{"lr", "0.01"},
          {"weight_decay", std::to_string(wd)},
          {"var_freeze_step", std::to_string(kFreeze)},
          {"var_update_scaler", "2"},
          {"local_step_scaler", "3"},
          {"local_step_clipper", "4"}};
}

// The documented formulas for all ranks at once, in ZeroOneAdam's float order.
struct Ref {
  int w;
  std::vector<Vec> p, m, p_sync;  // per rank
  Vec v;
  double lrs[2] = {0, 0};
  int64_t t = 0, vi = 1, vc = 0, li = 1, lc = 0;
  RefAllReduce ar;
  Ref(int world, const Vec& p0)
      : w(world),
        p(world, p0),
        m(world, Vec(p0.size(), 0.0f)),
        p_sync(world, p0),
        v(p0.size(), 0.0f),
        ar(world, p0.size()) {}
  static double lr_of(size_t i) { return i < kGroup0 ? 0.01 : 0.02; }
  void step() {
    ++t;
    const float b1 = 0.9f, omb1 = static_cast<float>(1.0 - 0.9);
    const float b2 = static_cast<float>(0.999), omb2 = static_cast<float>(1.0 - 0.999);
    const float wd = 0.01f, eps = static_cast<float>(1e-8);
    if (t <= kFreeze) {
      const bool var = t % vi == 0;
      if (var) {
        const Vec g = mean_grad(w, t);
        for (int r = 0; r < w; ++r) {
          for (size_t i = 0; i < g.size(); ++i) m[r][i] = b1 * m[r][i] + omb1 * g[i];
        }
        for (size_t i = 0; i < g.size(); ++i) v[i] = b2 * v[i] + omb2 * (g[i] * g[i]);
      } else {
        std::vector<Vec> gs;
        for (int r = 0; r < w; ++r) gs.push_back(local_grad(r, t));
        const Vec g1 = ar.reduce(gs);
        for (int r = 0; r < w; ++r) {
          for (size_t i = 0; i < g1.size(); ++i) m[r][i] = b1 * m[r][i] + omb1 * g1[i];
        }
      }
      for (int r = 0; r < w; ++r) {
        for (size_t i = 0; i < v.size(); ++i) {
          const float den = std::sqrt(v[i]) + eps;
          p[r][i] = p[r][i] + static_cast<float>(-lr_of(i)) * (m[r][i] / den + wd * p[r][i]);
        }
      }
      if (var && ++vc == 2) {
        vc = 0;
        vi *= 2;
      }
      if (t == kFreeze) {
        for (auto& e : ar.ew) std::fill(e.begin(), e.end(), 0.0f);
        for (auto& e : ar.es) std::fill(e.begin(), e.end(), 0.0f);
        p_sync = p;
      }
      return;
    }
    const bool sync = t % li == 0;
    lrs[0] += 0.01;
    lrs[1] += 0.02;
    std::vector<Vec> send(w, Vec(v.size()));
    for (int r = 0; r < w; ++r) {
      const Vec g = local_grad(r, t);
      for (size_t i = 0; i < v.size(); ++i) {
        m[r][i] = b1 * m[r][i] + omb1 * g[i];
        const float den = std::sqrt(v[i]) + eps;
        p[r][i] = p[r][i] + static_cast<float>(-lr_of(i)) * (m[r][i] / den + wd * p[r][i]);
        send[r][i] = (p[r][i] - p_sync[r][i]) * den;
      }
    }
    if (sync) {
      const Vec a = ar.reduce(send);
      for (int r = 0; r < w; ++r) {
        for (size_t i = 0; i < v.size(); ++i) {
          const float den = std::sqrt(v[i]) + eps;
          p[r][i] = p_sync[r][i] + a[i] / den;
          p_sync[r][i] = p[r][i];
          m[r][i] = -(a[i] / static_cast<float>(lrs[i < kGroup0 ? 0 : 1]));
        }
      }
      lrs[0] = lrs[1] = 0;
    }
    if (++lc == 3) {
      lc = 0;
      li = std::min<int64_t>(4, 2 * li);
    }
  }
};

// One rank's loop: the gradient the optimizer asks for at each step.
void feed(ZeroOneAdam& opt, Model& model, int w, int rank, int64_t t) {
  model.set(&model.grads, opt.wants_averaged_gradients() ? mean_grad(w, t) : local_grad(rank, t));
}

class ZeroOneAdamWorld : public ::testing::TestWithParam<int> {};

TEST_P(ZeroOneAdamWorld, ScheduleAndEveryRankBitForBitAgainstReference) {
  const int w = GetParam();
  std::vector<std::vector<Vec>> params(w);
  std::vector<std::set<int64_t>> dense(w), communicated(w);
  run_local_ranks(w, [&](Communicator& comm) {
    const int r = comm.rank();
    Model model;
    ZeroOneAdam opt(comm, options(), model.groups());
    for (int64_t t = 1; t <= kSteps; ++t) {
      if (opt.wants_averaged_gradients()) dense[r].insert(t);
      feed(opt, model, w, r, t);
      opt.step();
      if (opt.last_step_comm().payload_bytes > 0) communicated[r].insert(t);
      params[r].push_back(model.flat());
    }
    EXPECT_EQ(opt.var_interval(), 8);
    EXPECT_EQ(opt.local_step_interval(), 4);
  });
  Ref ref(w, Model().flat());
  for (int64_t t = 1; t <= kSteps; ++t) {
    ref.step();
    for (int r = 0; r < w; ++r) {
      ASSERT_EQ(params[r][t - 1], ref.p[r]) << "rank " << r << " step " << t;
    }
  }
  for (int r = 0; r < w; ++r) {
    EXPECT_EQ(dense[r], kDense) << "rank " << r;
    EXPECT_EQ(communicated[r], kCommunicating) << "rank " << r;
    // Synced at 24, local since: ranks differ (W > 1), and equal right after a sync.
    EXPECT_EQ(params[r][23], params[0][23]);
    if (w > 1 && r > 0) {
      EXPECT_NE(params[r][25], params[0][25]);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Worlds, ZeroOneAdamWorld, ::testing::Values(1, 2, 4));

TEST(ZeroOneAdam, CoordinatesWithoutGradientStayPut) {
  // The momentum mask: coordinates with v = 0 do not move (one_bit_mask_check.h).
  test::expect_coordinates_without_gradient_stay_put<ZeroOneAdam>({{"var_freeze_step", "6"},
                                                                   {"var_update_scaler", "1"},
                                                                   {"local_step_scaler", "2"},
                                                                   {"local_step_clipper", "4"},
                                                                   {"lr", "0.01"}},
                                                                  20, 0.45f);
}

TEST(ZeroOneAdam, ResumeInLocalPhaseIsExact) {
  const int w = 2;
  const int64_t saved_at = 21;  // local phase, sync interval 4, accumulator not empty
  std::vector<Vec> full(w), resumed(w), saved_params(w);
  std::vector<StateDict> saved(w);
  run_local_ranks(w, [&](Communicator& comm) {
    const int r = comm.rank();
    Model model;
    ZeroOneAdam opt(comm, options(), model.groups());
    for (int64_t t = 1; t <= kSteps; ++t) {
      feed(opt, model, w, r, t);
      opt.step();
      if (t == saved_at) {
        saved[r] = opt.state_dict();
        saved_params[r] = model.flat();
      }
    }
    full[r] = model.flat();
  });
  EXPECT_GT(saved[0].floats.at("group.1.lrs"), 0.0);
  run_local_ranks(w, [&](Communicator& comm) {
    const int r = comm.rank();
    Model model;
    model.set(&model.values, saved_params[r]);
    ZeroOneAdam opt(comm, options(), model.groups());
    opt.load_state_dict(saved[r]);
    EXPECT_EQ(opt.local_step_interval(), 4);
    for (int64_t t = saved_at + 1; t <= kSteps; ++t) {
      feed(opt, model, w, r, t);
      opt.step();
    }
    resumed[r] = model.flat();
  });
  for (int r = 0; r < w; ++r) EXPECT_EQ(resumed[r], full[r]) << "rank " << r;
}

TEST(ZeroOneAdam, NanStopsEveryRankWhenItCommunicatesAndTheLocalRankOtherwise) {
  const int w = 2;
  std::vector<int> caught(w, 0);
  run_local_ranks(w, [&](Communicator& comm) {
    const int r = comm.rank();
    Model model;
    ZeroOneAdam opt(comm, options(), model.groups());
    for (int64_t t = 1; t <= kSteps; ++t) {
      feed(opt, model, w, r, t);
      // Step 3 (1-bit), 20 (sync): rank 1 only; step 21 (local, no sync): rank 0 only.
      const bool bad = (r == 1 && (t == 3 || t == 20)) || (r == 0 && t == 21);
      if (bad) model.grads[1][5] = std::numeric_limits<float>::quiet_NaN();
      const StateDict before = opt.state_dict();
      const Vec p_before = model.flat();
      try {
        opt.step();
        EXPECT_FALSE(t == 3 || t == 20 || (t == 21 && r == 0)) << "rank " << r << " step " << t;
      } catch (const NumericalError& e) {
        caught[r] += 1;
        EXPECT_TRUE(opt.state_dict() == before);
        EXPECT_EQ(model.flat(), p_before);
        if (t == 21) {
          EXPECT_THAT(e.what(), HasSubstr("local step"));
          return;  // this rank stops; the other has no collective left in this test
        }
        feed(opt, model, w, r, t);  // retry the step with a good gradient
        opt.step();
      }
      if (t == 21) return;
    }
  });
  EXPECT_EQ(caught[0], 3);
  EXPECT_EQ(caught[1], 2);
}

TEST(ZeroOneAdam, OptionsStateBytesAndStats) {
  run_local_ranks(1, [&](Communicator& comm) {
    const std::vector<std::pair<OptionMap, std::string>> bad = {
        {{}, "'var_freeze_step' is required"},
        {{{"var_freeze_step", "10"}, {"local_step_clipper", "0"}},
         "'local_step_clipper' must be an integer >= 1, got 0"},
        {{{"var_freeze_step", "10"}, {"var_update_scaler", "abc"}}, "abc"},
        {{{"var_freeze_step", "10"}, {"freeze_step", "10"}}, "unknown option 'freeze_step'"},
        {{{"var_freeze_step", "10"}, {"betas", "0.9/1.5"}}, "'betas' must each be in [0, 1)"},
    };
    for (const auto& [opts, needle] : bad) {
      Model model;
      try {
        ZeroOneAdam opt(comm, opts, model.groups());
        ADD_FAILURE() << "accepted " << needle;
      } catch (const InvalidArgument& e) {
        EXPECT_THAT(e.what(), HasSubstr(needle));
      }
    }
    Model model;
    auto opt = make_communicating_optimizer(
        comm, OptimizerSpec::parse("zero_one_adam:var_freeze_step=4"), model.groups());
    ASSERT_NE(opt, nullptr);
    EXPECT_TRUE(is_communicating_optimizer("zero_one_adam"));
    EXPECT_EQ(opt->options(0).at("local_step_scaler"), "32678");
    EXPECT_EQ(opt->options(1).at("lr"), "0.02");
    EXPECT_EQ(opt->state_bytes(), static_cast<size_t>(4 * (3 * kTotal + 208 + 208)));
  });
  run_local_ranks(4, [&](Communicator& comm) {
    Model model;
    ZeroOneAdam opt(comm, options(), model.groups());
    EXPECT_EQ(opt.state_bytes(), static_cast<size_t>(4 * (3 * kTotal + 224 + 56)));
    for (int64_t t = 1; t <= 3; ++t) {
      feed(opt, model, 4, comm.rank(), t);
      opt.step();
    }
    const CommStats s = opt.last_step_comm();  // step 3: 1-bit
    EXPECT_EQ(s.bytes_sent, one_bit_all_reduce_bytes(kTotal, 4));
    EXPECT_EQ(s.payload_dense_bytes, 4u * kTotal);
    EXPECT_EQ(s.bytes_dense, 2u * 3u * 4u * kTotal / 4u);
  });
}

}  // namespace
}  // namespace terse

// 1-bit Adam (OneBitAdam) on threads-as-ranks: warm-up equal to terse's Adam/AdamW, the
// compression phase bit for bit against a single-process reference of the momenta, the 1-bit
// all-reduce and the update for W in {1, 2, 4}, exact resume, options, NaN, accounting.

#include "terse/train/one_bit_adam.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "one_bit_reference.h"
#include "terse/comm/local_communicator.h"
#include "terse/core/error.h"
#include "terse/optim/optimizer.h"
#include "terse/train/communicating_optimizer.h"

namespace terse {
namespace {

using test::RefAllReduce;

using ::testing::HasSubstr;
using Vec = std::vector<float>;

// Two groups: {37, 100} and {5, 64} elements; 206 in all.
const std::vector<std::vector<int64_t>> kGroups = {{37, 100}, {5, 64}};
constexpr int64_t kTotal = 206;

// A model's values and gradients, one vector per parameter.
struct Model {
  std::vector<Vec> values, grads;
  Model() {
    for (const auto& g : kGroups) {
      for (int64_t n : g) {
        Vec v(static_cast<size_t>(n));
        for (size_t i = 0; i < v.size(); ++i) v[i] = 0.01f * static_cast<float>(i % 17) - 0.05f;
        values.push_back(v);
        grads.push_back(Vec(static_cast<size_t>(n), 0.0f));
      }
    }
  }
  std::vector<ParamGroup> groups(const char* lr1 = "0.02") {
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
    out[1].overrides["lr"] = lr1;
    return out;
  }
  Vec flat() const {
    Vec f;
    for (const auto& v : values) f.insert(f.end(), v.begin(), v.end());
    return f;
  }
  void set_grads(const Vec& flat_grad) {
    size_t o = 0;
    for (auto& g : grads) {
      for (float& x : g) x = flat_grad[o++];
    }
  }
  void set_values(const Vec& flat_value) {
    size_t o = 0;
    for (auto& v : values) {
      for (float& x : v) x = flat_value[o++];
    }
  }
};

// Rank r's local gradient at step t (1-based), kTotal elements.
Vec local_grad(int rank, int64_t t) {
  std::mt19937 gen(static_cast<unsigned>(1000 * rank + t));
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  Vec g(kTotal);
  for (float& x : g) x = d(gen) + 0.1f * static_cast<float>(rank);
  return g;
}

// The average the dense all-reduce gives: sum in rank order, then / W.
Vec mean_grad(int w, int64_t t) {
  Vec s(kTotal, 0.0f);
  for (int r = 0; r < w; ++r) {
    const Vec g = local_grad(r, t);
    for (size_t i = 0; i < s.size(); ++i) s[i] += g[i];
  }
  for (float& x : s) x /= static_cast<float>(w);
  return s;
}

// 1-bit Adam by hand: the documented formulas, in AdamRule's float order.
struct RefOneBitAdam {
  int w;
  int64_t freeze;
  bool bias_correction;
  double wd, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  std::vector<double> lr;  // per element
  Vec p, m, v;
  RefAllReduce ar;
  int64_t t = 0;
  RefOneBitAdam(int world, int64_t freeze_step, bool bc, double weight_decay, const Vec& p0)
      : w(world),
        freeze(freeze_step),
        bias_correction(bc),
        wd(weight_decay),
        p(p0),
        m(p0.size(), 0.0f),
        v(p0.size(), 0.0f),
        ar(world, p0.size()) {
    for (size_t i = 0; i < p0.size(); ++i) lr.push_back(i < 137 ? 0.01 : 0.02);
  }
  void step() {
    ++t;
    const auto fb1 = static_cast<float>(b1), fomb1 = static_cast<float>(1.0 - b1);
    const auto fb2 = static_cast<float>(b2), fomb2 = static_cast<float>(1.0 - b2);
    const double c1 = bias_correction ? 1.0 - std::pow(b1, static_cast<double>(t)) : 1.0;
    const int64_t tv = t <= freeze ? t : freeze;
    const double c2 = bias_correction ? 1.0 - std::pow(b2, static_cast<double>(tv)) : 1.0;
    if (t <= freeze) {
      const Vec g = mean_grad(w, t);
      for (size_t i = 0; i < p.size(); ++i) {
        const float gi = 1.0f * g[i] + 0.0f * p[i];
        m[i] = fb1 * m[i] + fomb1 * gi;
        v[i] = fb2 * v[i] + fomb2 * (gi * gi);
      }
    } else {
      std::vector<Vec> mr(static_cast<size_t>(w), Vec(p.size()));
      for (int r = 0; r < w; ++r) {
        const Vec g = local_grad(r, t);
        for (size_t i = 0; i < p.size(); ++i) mr[r][i] = fb1 * m[i] + fomb1 * g[i];
      }
      m = ar.reduce(mr);
    }
    for (size_t i = 0; i < p.size(); ++i) {
      const auto decay = static_cast<float>(1.0 - lr[i] * wd);
      const auto neg = static_cast<float>(-lr[i] / c1);
      const auto c2s = static_cast<float>(std::sqrt(c2));
      const float pi = p[i] * decay;
      const float den = std::sqrt(v[i]) / c2s + static_cast<float>(eps);
      p[i] = pi + neg * (m[i] / den);
    }
  }
};

OptionMap options_of(int64_t freeze, bool bc, double wd) {
  return {{"lr", "0.01"},
          {"freeze_step", std::to_string(freeze)},
          {"bias_correction", bc ? "true" : "false"},
          {"weight_decay", std::to_string(wd)}};
}

// Runs `steps` steps on W threads-as-ranks; per rank and step, the flat parameters.
struct RankRun {
  std::vector<std::vector<Vec>> params;  // [rank][step]
  std::vector<Vec> worker_error, server_error, exp_avg;
  std::vector<std::vector<bool>> averaged;  // [rank][step]: wants_averaged_gradients
};

RankRun run_ranks(int w, int64_t steps, int64_t freeze, bool bc, double wd) {
  RankRun out;
  out.params.assign(static_cast<size_t>(w), {});
  out.averaged.assign(static_cast<size_t>(w), {});
  out.worker_error.resize(static_cast<size_t>(w));
  out.server_error.resize(static_cast<size_t>(w));
  out.exp_avg.resize(static_cast<size_t>(w));
  run_local_ranks(w, [&](Communicator& comm) {
    const auto r = static_cast<size_t>(comm.rank());
    Model model;
    OneBitAdam opt(comm, options_of(freeze, bc, wd), model.groups());
    for (int64_t t = 1; t <= steps; ++t) {
      const bool avg = opt.wants_averaged_gradients();
      out.averaged[r].push_back(avg);
      model.set_grads(avg ? mean_grad(w, t) : local_grad(comm.rank(), t));
      opt.step();
      out.params[r].push_back(model.flat());
    }
    out.worker_error[r] = opt.all_reduce().worker_error();
    out.server_error[r] = opt.all_reduce().server_error();
    const StateDict sd = opt.state_dict();
    out.exp_avg[r].resize(kTotal);
    sd.tensor("exp_avg").copy_to(TensorView::of(out.exp_avg[r].data(), kTotal), "exp_avg");
  });
  return out;
}

TEST(OneBitAdam, WarmupEqualsAdamAndAdamWWithBiasCorrection) {
  for (double wd : {0.0, 0.05}) {
    Model a, b;
    auto ga = a.groups("0.01");
    ga[1].overrides.clear();
    run_local_ranks(1, [&](Communicator& comm) {
      OneBitAdam opt(comm, options_of(50, true, wd), ga);
      auto ref = make_optimizer(OptimizerSpec::parse(std::string(wd == 0 ? "adam" : "adamw") +
                                                     ":lr=0.01,weight_decay=" + std::to_string(wd)),
                                [&] {
                                  auto gb = b.groups("0.01");
                                  gb[1].overrides.clear();
                                  return gb;
                                }());
      for (int64_t t = 1; t <= 20; ++t) {
        ASSERT_TRUE(opt.wants_averaged_gradients());
        a.set_grads(mean_grad(3, t));
        b.set_grads(mean_grad(3, t));
        opt.step();
        ref->step();
        ASSERT_EQ(a.flat(), b.flat()) << "step " << t << " weight_decay " << wd;
      }
      EXPECT_EQ(opt.last_step_comm().bytes_sent, 0u);
      EXPECT_NE(a.flat(), Model().flat());
    });
  }
}

TEST(OneBitAdam, WarmupWithoutBiasCorrectionIsDeepSpeedsUncorrectedForm) {
  Model a;
  RefOneBitAdam ref(1, 100, false, 0.0, a.flat());
  run_local_ranks(1, [&](Communicator& comm) {
    OneBitAdam opt(comm, options_of(100, false, 0.0), a.groups());
    for (int64_t t = 1; t <= 10; ++t) {
      a.set_grads(mean_grad(1, t));
      opt.step();
      ref.step();
      ASSERT_EQ(a.flat(), ref.p) << "step " << t;
    }
  });
  // The first uncorrected step moves by lr * 0.1 g / (sqrt(0.001) |g| + eps), not by lr.
  Model fresh;
  const Vec g = mean_grad(1, 1);
  const Vec p0 = fresh.flat();
  RefOneBitAdam one(1, 100, false, 0.0, p0);
  one.step();
  const double expect = 0.01 * 0.1 / std::sqrt(0.001);
  EXPECT_NEAR(p0[0] - one.p[0], (g[0] > 0 ? 1 : -1) * expect, 1e-5);
}

class OneBitAdamWorld : public ::testing::TestWithParam<int> {};

TEST_P(OneBitAdamWorld, CompressionPhaseMatchesReferenceBitForBit) {
  const int w = GetParam();
  for (bool bc : {false, true}) {
    const int64_t freeze = 3, steps = 9;
    const RankRun run = run_ranks(w, steps, freeze, bc, 0.01);
    RefOneBitAdam ref(w, freeze, bc, 0.01, Model().flat());
    for (int64_t t = 1; t <= steps; ++t) {
      ref.step();
      for (int r = 0; r < w; ++r) {
        ASSERT_EQ(run.averaged[r][t - 1], t <= freeze) << "rank " << r << " step " << t;
        ASSERT_EQ(run.params[r][t - 1], ref.p) << "rank " << r << " step " << t << " bc " << bc;
      }
    }
    for (int r = 0; r < w; ++r) {
      EXPECT_EQ(run.exp_avg[r], ref.m);
      EXPECT_EQ(run.worker_error[r], ref.ar.ew[r]) << "rank " << r;
      EXPECT_EQ(run.server_error[r], ref.ar.es[r]) << "rank " << r;
    }
    // The compressed momentum is not the exact mean: the errors carry the difference.
    double err = 0;
    for (float e : ref.ar.ew[0]) err += std::fabs(e);
    EXPECT_GT(err, 0.0);
  }
}

INSTANTIATE_TEST_SUITE_P(Worlds, OneBitAdamWorld, ::testing::Values(1, 2, 4));

TEST(OneBitAdam, ConstantMagnitudeMomentumPassesExactlyOnOneRank) {
  // 1 rank, 256 elements (no padding): a momentum with |m_i| all equal is its own 1-bit
  // encoding (scale = |m_i|), so the compression phase is Adam with frozen v and no error.
  const int64_t n = 256;
  Vec value(n, 0.5f), grad(n);
  for (int64_t i = 0; i < n; ++i) grad[i] = (i % 3 == 0) ? -0.25f : 0.25f;
  run_local_ranks(1, [&](Communicator& comm) {
    std::vector<ParamGroup> groups(1);
    groups[0].params.push_back(
        Param{TensorView::of(value.data(), n), TensorView::of(grad.data(), n), {n}, "w"});
    OneBitAdam opt(comm, {{"freeze_step", "1"}, {"lr", "0.01"}}, groups);
    opt.step();  // warm-up: m = 0.1 g, v = 0.001 g^2, both of constant magnitude
    Vec m(n), v(n), p(value);
    const StateDict sd = opt.state_dict();
    sd.tensor("exp_avg").copy_to(TensorView::of(m.data(), n), "exp_avg");
    sd.tensor("exp_avg_sq").copy_to(TensorView::of(v.data(), n), "exp_avg_sq");
    const auto b1 = static_cast<float>(0.9), omb1 = static_cast<float>(1.0 - 0.9);
    for (int s = 0; s < 4; ++s) {
      ASSERT_FALSE(opt.wants_averaged_gradients());
      opt.step();
      for (int64_t i = 0; i < n; ++i) {
        m[i] = b1 * m[i] + omb1 * grad[i];
        const float den = std::sqrt(v[i]) / 1.0f + 1e-8f;
        p[i] = p[i] * 1.0f + (-0.01f) * (m[i] / den);
      }
      ASSERT_EQ(value, p) << "compression step " << s;
      for (float e : opt.all_reduce().worker_error()) ASSERT_EQ(e, 0.0f);
      for (float e : opt.all_reduce().server_error()) ASSERT_EQ(e, 0.0f);
    }
  });
}

TEST(OneBitAdam, CoordinatesWithoutGradientInWarmupStayPut) {
  // Half the coordinates never get a gradient while the variance freezes (a dead unit, an unused
  // embedding row): v = 0 there. One bit cannot say 0, so their all-reduced momentum is +-scale;
  // the momentum mask keeps them (and their momentum) at exactly what Adam would: unchanged.
  const int64_t n = 64;
  Vec value(n, 0.5f), grad(n, 0.0f);
  run_local_ranks(2, [&](Communicator& comm) {
    Vec my_value(value), my_grad(grad);
    std::vector<ParamGroup> groups(1);
    groups[0].params.push_back(
        Param{TensorView::of(my_value.data(), n), TensorView::of(my_grad.data(), n), {n}, "w"});
    OneBitAdam opt(comm, {{"freeze_step", "3"}, {"lr", "0.01"}}, groups);
    for (int t = 0; t < 10; ++t) {
      // Warm-up: gradient only on even coordinates; afterwards on every coordinate.
      for (int64_t i = 0; i < n; ++i) {
        my_grad[static_cast<size_t>(i)] =
            (t >= 3 || i % 2 == 0) ? 0.1f * static_cast<float>(comm.rank() + 1 + i % 5) : 0.0f;
      }
      opt.step();
    }
    const StateDict sd = opt.state_dict();
    Vec m(n);
    sd.tensor("exp_avg").copy_to(TensorView::of(m.data(), n), "exp_avg");
    for (int64_t i = 0; i < n; ++i) {
      const auto k = static_cast<size_t>(i);
      if (i % 2 == 1) {
        EXPECT_EQ(my_value[k], 0.5f) << i;
        EXPECT_EQ(m[k], 0.0f) << i;
      } else {
        EXPECT_LT(my_value[k], 0.45f) << i;  // moved against the positive gradient
      }
    }
  });
}

TEST(OneBitAdam, ResumeInCompressionPhaseIsExact) {
  const int w = 2;
  const int64_t freeze = 2, steps = 8, saved_at = 4;
  const RankRun full = run_ranks(w, steps, freeze, true, 0.0);
  std::vector<StateDict> saved(w);
  std::vector<Vec> saved_params(w);
  run_local_ranks(w, [&](Communicator& comm) {
    Model model;
    OneBitAdam opt(comm, options_of(freeze, true, 0.0), model.groups());
    for (int64_t t = 1; t <= saved_at; ++t) {
      model.set_grads(opt.wants_averaged_gradients() ? mean_grad(w, t)
                                                     : local_grad(comm.rank(), t));
      opt.step();
    }
    saved[comm.rank()] = opt.state_dict();
    saved_params[comm.rank()] = model.flat();
  });
  for (bool reset_errors : {false, true}) {
    std::vector<Vec> resumed(w);
    run_local_ranks(w, [&](Communicator& comm) {
      Model model;
      model.set_values(saved_params[comm.rank()]);
      OneBitAdam opt(comm, options_of(freeze, true, 0.0), model.groups());
      StateDict sd = saved[comm.rank()];
      if (reset_errors) {  // what DeepSpeed does on load
        for (auto* key : {"onebit.worker_error", "onebit.server_error"}) {
          auto& bytes = sd.tensors.at(key).bytes;
          std::fill(bytes.begin(), bytes.end(), 0);
        }
      }
      opt.load_state_dict(sd);
      EXPECT_EQ(opt.step_count(), saved_at);
      EXPECT_FALSE(opt.wants_averaged_gradients());
      for (int64_t t = saved_at + 1; t <= steps; ++t) {
        model.set_grads(local_grad(comm.rank(), t));
        opt.step();
      }
      resumed[comm.rank()] = model.flat();
    });
    for (int r = 0; r < w; ++r) {
      if (reset_errors) {
        EXPECT_NE(resumed[r], full.params[r].back()) << "rank " << r;
      } else {
        EXPECT_EQ(resumed[r], full.params[r].back()) << "rank " << r;
      }
    }
  }
}

TEST(OneBitAdam, LoadRefusesOtherFreezeStepOrWorldAndKeepsState) {
  std::vector<StateDict> two(2);
  run_local_ranks(2, [&](Communicator& comm) {
    Model model;
    OneBitAdam opt(comm, options_of(1, false, 0.0), model.groups());
    model.set_grads(mean_grad(2, 1));
    opt.step();
    model.set_grads(local_grad(comm.rank(), 2));
    opt.step();
    two[comm.rank()] = opt.state_dict();
  });
  run_local_ranks(1, [&](Communicator& comm) {
    Model model;
    OneBitAdam opt(comm, options_of(1, false, 0.0), model.groups());
    const StateDict before = opt.state_dict();
    try {
      opt.load_state_dict(two[0]);
      ADD_FAILURE() << "loaded a 2-rank state on 1 rank";
    } catch (const InvalidArgument& e) {
      EXPECT_THAT(e.what(), HasSubstr("saved on 2 rank(s) but this run has 1"));
    }
    EXPECT_TRUE(opt.state_dict() == before);
    OneBitAdam other(comm, options_of(7, false, 0.0), model.groups());
    StateDict sd = two[0];
    sd.ints["world_size"] = 1;
    EXPECT_THROW(other.load_state_dict(sd), InvalidArgument);  // freeze_step 1 vs 7
    OneBitAdam same(comm, options_of(1, false, 0.0), model.groups());
    // Right freeze_step and world, but errors sized for 2 ranks: refused by the all-reduce.
    EXPECT_THROW(same.load_state_dict(sd), InvalidArgument);
    EXPECT_EQ(same.step_count(), 0);
  });
}

TEST(OneBitAdam, BadOptionsAreInvalidArgumentNamingOptionAndValue) {
  struct Case {
    OptionMap options;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {{}, "'freeze_step' is required"},
      {{{"freeze_step", "0"}}, "'freeze_step' must be an integer >= 1, got 0"},
      {{{"freeze_step", "-3"}}, "got -3"},
      {{{"freeze_step", "ten"}}, "ten"},
      {{{"freeze_step", "5"}, {"momentum", "0.9"}}, "unknown option 'momentum' (= '0.9')"},
      {{{"freeze_step", "5"}, {"betas", "1.0/0.999"}}, "'betas' must each be in [0, 1), got 1/"},
      {{{"freeze_step", "5"}, {"eps", "0"}}, "'eps' must be a finite number > 0, got 0"},
      {{{"freeze_step", "5"}, {"lr", "-1"}}, "'lr' must be a finite number >= 0, got -1"},
      {{{"freeze_step", "5"}, {"weight_decay", "nan"}}, "weight_decay"},
      {{{"freeze_step", "5"}, {"eps_inside_sqrt", "true"}}, "'eps_inside_sqrt' is true"},
      {{{"freeze_step", "5"}, {"bias_correction", "maybe"}}, "maybe"},
      {{{"freeze_step", "5"}, {"defer_worker_error", "sometimes"}}, "defer_worker_error"},
  };
  run_local_ranks(1, [&](Communicator& comm) {
    for (const auto& c : cases) {
      Model model;
      try {
        OneBitAdam opt(comm, c.options, model.groups());
        ADD_FAILURE() << "accepted " << c.needle;
      } catch (const InvalidArgument& e) {
        EXPECT_THAT(e.what(), HasSubstr(c.needle));
      }
    }
    Model model;
    auto groups = model.groups();
    groups[1].overrides["freeze_step"] = "9";
    try {
      OneBitAdam opt(comm, {{"freeze_step", "5"}}, groups);
      ADD_FAILURE() << "accepted a per-group freeze_step";
    } catch (const InvalidArgument& e) {
      EXPECT_THAT(e.what(), HasSubstr("option 'freeze_step' (= '9') cannot differ per group"));
    }
    std::vector<uint16_t> half(4), half_grad(4);
    std::vector<ParamGroup> bf(1);
    bf[0].params.push_back(Param{TensorView(half.data(), 4, DType::kBF16),
                                 TensorView(half_grad.data(), 4, DType::kBF16),
                                 {4},
                                 "h"});
    EXPECT_THROW(OneBitAdam(comm, {{"freeze_step", "5"}}, bf), InvalidArgument);
  });
}

TEST(OneBitAdam, NanGradientStopsEveryRankAndChangesNothing) {
  const int w = 4;
  std::vector<int> caught(w, 0);
  std::vector<Vec> after(w);
  run_local_ranks(w, [&](Communicator& comm) {
    const int r = comm.rank();
    Model model;
    OneBitAdam opt(comm, options_of(2, true, 0.0), model.groups());
    // Warm-up: the averaged gradient is NaN on every rank.
    Vec g = mean_grad(w, 1);
    g[50] = std::numeric_limits<float>::quiet_NaN();
    model.set_grads(g);
    try {
      opt.step();
    } catch (const NumericalError& e) {
      EXPECT_THAT(e.what(), HasSubstr("warm-up"));
      caught[r] += 1;
    }
    EXPECT_EQ(opt.step_count(), 0);
    EXPECT_EQ(model.flat(), Model().flat());
    for (int64_t t = 1; t <= 2; ++t) {
      model.set_grads(mean_grad(w, t));
      opt.step();
    }
    // Compression: only rank 2's local gradient is NaN.
    const StateDict before = opt.state_dict();
    const Vec p_before = model.flat();
    Vec local = local_grad(r, 3);
    if (r == 2) local[7] = std::numeric_limits<float>::infinity();
    model.set_grads(local);
    try {
      opt.step();
    } catch (const NumericalError& e) {
      EXPECT_THAT(e.what(), HasSubstr("rank(s) 2"));
      caught[r] += 1;
    }
    EXPECT_EQ(opt.step_count(), 2);
    EXPECT_EQ(model.flat(), p_before);
    EXPECT_TRUE(opt.state_dict() == before);
    // And the next good step runs (no rank hangs or is out of step).
    model.set_grads(local_grad(r, 3));
    opt.step();
    after[r] = model.flat();
  });
  for (int r = 0; r < w; ++r) {
    EXPECT_EQ(caught[r], 2) << "rank " << r;
    EXPECT_EQ(after[r], after[0]) << "rank " << r;
  }
}

TEST(OneBitAdam, StateBytesAndCommStats) {
  for (int w : {1, 4}) {
    run_local_ranks(w, [&](Communicator& comm) {
      Model model;
      OneBitAdam opt(comm, options_of(1, false, 0.0), model.groups());
      const int64_t padded = w == 1 ? 208 : 224;  // multiple of W * lcm(W, 8)
      EXPECT_EQ(opt.all_reduce().padded_numel(), padded);
      EXPECT_EQ(opt.state_bytes(), static_cast<size_t>(4 * (2 * kTotal + padded + padded / w)));
      model.set_grads(mean_grad(w, 1));
      opt.step();
      EXPECT_EQ(opt.last_step_comm().payload_bytes, 0u);
      model.set_grads(local_grad(comm.rank(), 2));
      opt.step();
      const CommStats s = opt.last_step_comm();
      EXPECT_EQ(s.bytes_sent, one_bit_all_reduce_bytes(kTotal, w));
      EXPECT_EQ(s.bytes_sent, w == 1 ? 0u : 2u * 3u * (224u / 32u) + 2u * 3u * 4u);
      EXPECT_EQ(s.bytes_dense, w == 1 ? 0u : 2u * 3u * 4u * kTotal / 4u);
      EXPECT_EQ(s.payload_dense_bytes, 4u * kTotal);
      EXPECT_EQ(s.payload_bytes, static_cast<uint64_t>(padded / 8 + 4 + padded / (8 * w) + 4));
      EXPECT_GE(s.time_comm_s, 0.0);
    });
  }
}

TEST(OneBitAdam, FactoryAndOptions) {
  EXPECT_TRUE(is_communicating_optimizer("onebit_adam"));
  EXPECT_FALSE(is_communicating_optimizer("adam"));
  run_local_ranks(1, [&](Communicator& comm) {
    Model model;
    auto opt = make_communicating_optimizer(
        comm, OptimizerSpec::parse("onebit_adam:freeze_step=7,lr=0.01"), model.groups());
    ASSERT_NE(opt, nullptr);
    EXPECT_STREQ(opt->name(), "onebit_adam");
    EXPECT_EQ(opt->num_groups(), 2u);
    EXPECT_DOUBLE_EQ(opt->lr(0), 0.01);
    EXPECT_DOUBLE_EQ(opt->lr(1), 0.02);
    const OptionMap o = opt->options(0);
    EXPECT_EQ(o.at("freeze_step"), "7");
    EXPECT_EQ(o.at("betas"), "0.9/0.999");
    EXPECT_EQ(o.at("bias_correction"), "false");
    EXPECT_EQ(o.at("defer_worker_error"), "true");
    const auto overlapped = make_communicating_optimizer(
        comm, OptimizerSpec::parse("onebit_adam:freeze_step=7,defer_worker_error=false"),
        model.groups());
    EXPECT_EQ(overlapped->options(0).at("defer_worker_error"), "false");
    opt->scale_lr(0.5);
    EXPECT_DOUBLE_EQ(opt->lr(1), 0.01);
    EXPECT_EQ(make_communicating_optimizer(comm, OptimizerSpec::parse("adam"), model.groups()),
              nullptr);
  });
}

}  // namespace
}  // namespace terse

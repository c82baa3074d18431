// 1-bit LAMB (OneBitLamb) on threads-as-ranks: LAMB warm-up with clipped trust ratios, the
// compression phase (scaling coefficients, fused 1-bit momenta, fresh variance, factor
// clipping) bit for bit against a single-process reference for W in {1, 2, 4}, exact resume,
// NaN on every rank, options.

#include "terse/train/one_bit_lamb.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "one_bit_mask_check.h"
#include "one_bit_reference.h"
#include "terse/comm/local_communicator.h"
#include "terse/core/error.h"
#include "terse/kernels/fixed_order_sum.h"
#include "terse/train/communicating_optimizer.h"

namespace terse {
namespace {

using test::RefAllReduce;
using ::testing::HasSubstr;
using Vec = std::vector<float>;

const std::vector<int64_t> kSizes = {37, 100, 5, 64};  // groups {0, 1} and {2, 3}
const std::vector<double> kLr = {0.01, 0.01, 0.02, 0.02};
constexpr int64_t kTotal = 206;

struct Model {
  std::vector<Vec> values, grads;
  Model() {
    for (int64_t n : kSizes) {
      Vec v(static_cast<size_t>(n));
      for (size_t i = 0; i < v.size(); ++i) v[i] = 0.02f * static_cast<float>(i % 11) - 0.1f;
      values.push_back(v);
      grads.push_back(Vec(static_cast<size_t>(n), 0.0f));
    }
  }
  std::vector<ParamGroup> groups() {
    std::vector<ParamGroup> out(2);
    for (size_t k = 0; k < kSizes.size(); ++k) {
      out[k / 2].params.push_back(Param{TensorView::of(values[k].data(), kSizes[k]),
                                        TensorView::of(grads[k].data(), kSizes[k]),
                                        {kSizes[k]},
                                        "p" + std::to_string(k)});
    }
    out[1].overrides["lr"] = "0.02";
    return out;
  }
  Vec flat() const {
    Vec f;
    for (const auto& v : values) f.insert(f.end(), v.begin(), v.end());
    return f;
  }
  static void set(std::vector<Vec>* dst, const Vec& src) {
    size_t o = 0;
    for (auto& g : *dst) {
      for (float& x : g) x = src[o++];
    }
  }
};

Vec local_grad(int rank, int64_t t) {
  std::mt19937 gen(static_cast<unsigned>(3571 * rank + t));
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  Vec g(kTotal);
  // Tensors of very different magnitude, as layers are: what the scaling coefficients fix.
  for (size_t i = 0; i < g.size(); ++i) g[i] = (d(gen) + 0.1f * rank) * (i < 37 ? 5.0f : 0.2f);
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

constexpr int64_t kFreeze = 3, kSteps = 9;
const double kWd = 0.01;

OptionMap options() {
  return {{"lr", "0.01"}, {"freeze_step", std::to_string(kFreeze)}, {"weight_decay", "0.01"}};
}

// ||x||^2 over [o, o + n) of x in the documented fixed order.
double sq(const Vec& x, size_t o, size_t n) {
  return fixed_sum::host_sum(x.data() + o, static_cast<int64_t>(n), fixed_sum::Term::kSquare);
}

// The documented formulas, in OneBitLamb's float / double order.
struct Ref {
  int w;
  Vec p, m, v, vf;
  std::vector<double> cf, last, s, coeff;
  bool ready = false;
  int64_t t = 0;
  RefAllReduce ar;
  const float b1 = 0.9f, omb1 = static_cast<float>(1.0 - 0.9);
  const float b2 = static_cast<float>(0.999), omb2 = static_cast<float>(1.0 - 0.999);
  const float wd = static_cast<float>(kWd), eps = static_cast<float>(1e-8);
  Ref(int world, const Vec& p0)
      : w(world),
        p(p0),
        m(p0.size(), 0.0f),
        v(p0.size(), 0.0f),
        vf(p0.size(), 0.0f),
        cf(4, 0.0),
        last(4, 1.0),
        s(4, 1.0),
        coeff(4, 1.0),
        ar(world, p0.size()) {}
  float u(size_t i) const { return m[i] / (std::sqrt(v[i]) + eps) + wd * p[i]; }
  void apply(size_t o, size_t n, size_t j) {
    const auto step = static_cast<float>(-kLr[j] * coeff[j]);
    for (size_t i = o; i < o + n; ++i) p[i] = p[i] + step * u(i);
  }
  void step() {
    ++t;
    if (t <= kFreeze) {
      const Vec g = mean_grad(w, t);
      size_t o = 0;
      for (size_t j = 0; j < 4; ++j) {
        const auto n = static_cast<size_t>(kSizes[j]);
        Vec us(p.size(), 0.0f);
        for (size_t i = o; i < o + n; ++i) {
          m[i] = b1 * m[i] + omb1 * g[i];
          v[i] = b2 * v[i] + omb2 * (g[i] * g[i]);
          us[i] = u(i);
        }
        const double wsq = sq(p, o, n), usq = sq(us, o, n);
        if (t == kFreeze) std::copy(v.begin() + o, v.begin() + o + n, vf.begin() + o);
        double c = 1.0;
        if (wsq > 0 && usq > 0) c = std::clamp(std::sqrt(wsq) / std::sqrt(usq), 0.01, 10.0);
        if (c != 1.0) cf[j] = 0.9 * cf[j] + (1 - 0.9) * c;
        coeff[j] = c;
        apply(o, n, j);
        o += n;
      }
      return;
    }
    if (!ready) {
      std::vector<double> rms(4);
      double sum = 0;
      size_t o = 0;
      for (size_t j = 0; j < 4; ++j) {
        const double msq = sq(m, o, static_cast<size_t>(kSizes[j]));
        rms[j] = std::sqrt(msq) / std::sqrt(static_cast<double>(kSizes[j]));
        sum += rms[j];
        o += static_cast<size_t>(kSizes[j]);
      }
      for (size_t j = 0; j < 4; ++j) s[j] = (sum / 4) / rms[j];
      ready = true;
    }
    std::vector<Vec> send(w, Vec(p.size()));
    for (int r = 0; r < w; ++r) {
      const Vec g = local_grad(r, t);
      size_t o = 0;
      for (size_t j = 0; j < 4; ++j) {
        for (size_t i = o; i < o + static_cast<size_t>(kSizes[j]); ++i) {
          send[r][i] = (b1 * m[i] + omb1 * g[i]) * static_cast<float>(s[j]);
        }
        o += static_cast<size_t>(kSizes[j]);
      }
    }
    const Vec a = ar.reduce(send);
    size_t o = 0;
    for (size_t j = 0; j < 4; ++j) {
      const auto n = static_cast<size_t>(kSizes[j]);
      float max_ratio = 0;
      Vec pres(p.size(), 0.0f), us(p.size(), 0.0f);
      for (size_t i = o; i < o + n; ++i) {
        const float m_new = a[i] / static_cast<float>(s[j]);
        const float gr = (m_new - m[i] * b1) / omb1;
        vf[i] = b2 * vf[i] + omb2 * (gr * gr);
        m[i] = m_new;
        const float den = std::sqrt(v[i]) + eps;
        max_ratio = std::max(max_ratio, den / (std::sqrt(vf[i]) + eps));
        pres[i] = m_new / den;
        us[i] = pres[i] + wd * p[i];
      }
      const double psq = sq(pres, o, n), usq = sq(us, o, n);
      double f = max_ratio;
      const double r = std::min(1.0, std::sqrt(psq) / std::sqrt(usq));
      f = f * r + (1.0 - r);
      f = std::clamp(f, 0.5, 4.0);
      f = std::clamp(f, last[j] * 0.9, last[j] * 1.1);
      last[j] = f;
      coeff[j] = cf[j] * f;
      apply(o, n, j);
      o += n;
    }
  }
};

void feed(OneBitLamb& opt, Model& model, int w, int rank, int64_t t) {
  Model::set(&model.grads, opt.wants_averaged_gradients() ? mean_grad(w, t) : local_grad(rank, t));
}

class OneBitLambWorld : public ::testing::TestWithParam<int> {};

TEST_P(OneBitLambWorld, EveryStepBitForBitAgainstReference) {
  const int w = GetParam();
  std::vector<std::vector<Vec>> params(w);
  std::vector<std::vector<std::vector<double>>> coeffs(w);
  std::vector<StateDict> states(w);
  run_local_ranks(w, [&](Communicator& comm) {
    const int r = comm.rank();
    Model model;
    OneBitLamb opt(comm, options(), model.groups());
    for (int64_t t = 1; t <= kSteps; ++t) {
      EXPECT_EQ(opt.wants_averaged_gradients(), t <= kFreeze);
      feed(opt, model, w, r, t);
      opt.step();
      params[r].push_back(model.flat());
      coeffs[r].push_back(opt.last_coeffs());
      EXPECT_EQ(opt.last_step_comm().payload_bytes > 0, t > kFreeze);
    }
    states[r] = opt.state_dict();
  });
  Ref ref(w, Model().flat());
  for (int64_t t = 1; t <= kSteps; ++t) {
    ref.step();
    for (int r = 0; r < w; ++r) {
      ASSERT_EQ(params[r][t - 1], ref.p) << "rank " << r << " step " << t;
      ASSERT_EQ(coeffs[r][t - 1], ref.coeff) << "rank " << r << " step " << t;
    }
  }
  // The scaling coefficients equalise the tensors' momentum RMS (the first tensor's gradient
  // is 25x larger than the others': its RMS is about 25 / 7 of the mean of the four).
  EXPECT_GT(ref.s[0], 0.2);
  EXPECT_LT(ref.s[0], 0.35);
  EXPECT_GT(ref.s[1], 3.0);
  for (size_t j = 0; j < 4; ++j) {
    EXPECT_DOUBLE_EQ(states[0].floats.at("param." + std::to_string(j) + ".scaling_coeff"),
                     ref.s[j]);
    EXPECT_GT(ref.cf[j], 0.0);
  }
}

INSTANTIATE_TEST_SUITE_P(Worlds, OneBitLambWorld, ::testing::Values(1, 2, 4));

TEST(OneBitLamb, WarmupTrustRatioIsClippedAndZeroWeightsGiveOne) {
  run_local_ranks(1, [&](Communicator& comm) {
    Model model;
    std::fill(model.values[2].begin(), model.values[2].end(), 0.0f);  // ||p|| = 0
    OneBitLamb opt(comm, {{"freeze_step", "5"}, {"max_coeff", "0.03"}, {"min_coeff", "0.02"}},
                   model.groups());
    feed(opt, model, 1, 0, 1);
    opt.step();
    const auto& c = opt.last_coeffs();
    EXPECT_EQ(c[2], 1.0);  // zero weights: LAMB's ratio is 1 and the EMA is not updated
    for (size_t j : {0u, 1u, 3u}) {
      EXPECT_GE(c[j], 0.02);
      EXPECT_LE(c[j], 0.03);
    }
    const StateDict sd = opt.state_dict();
    EXPECT_EQ(sd.floats.at("param.2.lamb_coeff_freeze"), 0.0);
    EXPECT_DOUBLE_EQ(sd.floats.at("param.0.lamb_coeff_freeze"), 0.1 * c[0]);
  });
}

TEST(OneBitLamb, CoordinatesWithoutGradientStayPut) {
  // The momentum mask: coordinates with v = 0 do not move (one_bit_mask_check.h).
  test::expect_coordinates_without_gradient_stay_put<OneBitLamb>(
      {{"freeze_step", "3"}, {"lr", "0.01"}}, 12, 0.5f);
}

TEST(OneBitLamb, ResumeInCompressionPhaseIsExact) {
  const int w = 2;
  const int64_t saved_at = 5;
  std::vector<Vec> full(w), resumed(w), saved_params(w);
  std::vector<StateDict> saved(w);
  run_local_ranks(w, [&](Communicator& comm) {
    const int r = comm.rank();
    Model model;
    OneBitLamb opt(comm, options(), model.groups());
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
  run_local_ranks(w, [&](Communicator& comm) {
    const int r = comm.rank();
    Model model;
    Model::set(&model.values, saved_params[r]);
    OneBitLamb opt(comm, options(), model.groups());
    opt.load_state_dict(saved[r]);
    for (int64_t t = saved_at + 1; t <= kSteps; ++t) {
      feed(opt, model, w, r, t);
      opt.step();
    }
    resumed[r] = model.flat();
  });
  for (int r = 0; r < w; ++r) EXPECT_EQ(resumed[r], full[r]) << "rank " << r;
}

TEST(OneBitLamb, NanStopsEveryRankAndChangesNothing) {
  const int w = 2;
  std::vector<int> caught(w, 0);
  run_local_ranks(w, [&](Communicator& comm) {
    const int r = comm.rank();
    Model model;
    OneBitLamb opt(comm, options(), model.groups());
    for (int64_t t = 1; t <= kSteps; ++t) {
      feed(opt, model, w, r, t);
      const bool bad = (t == 2) || (r == 1 && (t == 4 || t == 6));  // 2: averaged, so all
      if (bad) model.grads[3][9] = std::numeric_limits<float>::infinity();
      const StateDict before = opt.state_dict();
      const Vec p_before = model.flat();
      try {
        opt.step();
      } catch (const NumericalError&) {
        caught[r] += 1;
        EXPECT_TRUE(opt.state_dict() == before);
        EXPECT_EQ(model.flat(), p_before);
        feed(opt, model, w, r, t);
        opt.step();
      }
    }
  });
  EXPECT_EQ(caught[0], 3);
  EXPECT_EQ(caught[1], 3);
}

TEST(OneBitLamb, BadOptionsAndFactory) {
  run_local_ranks(1, [&](Communicator& comm) {
    const std::vector<std::pair<OptionMap, std::string>> bad = {
        {{}, "'freeze_step' is required"},
        {{{"freeze_step", "3"}, {"max_coeff", "0.001"}}, "'max_coeff' must be a finite number >="},
        {{{"freeze_step", "3"}, {"coeff_beta", "1"}}, "'coeff_beta' must be in [0, 1), got 1"},
        {{{"freeze_step", "3"}, {"factor_min", "0"}}, "'factor_min' must be a finite number > 0"},
        {{{"freeze_step", "3"}, {"factor_threshold", "2"}}, "'factor_threshold' must be in"},
        {{{"freeze_step", "3"}, {"var_freeze_step", "3"}}, "unknown option 'var_freeze_step'"},
    };
    for (const auto& [opts, needle] : bad) {
      Model model;
      try {
        OneBitLamb opt(comm, opts, model.groups());
        ADD_FAILURE() << "accepted " << needle;
      } catch (const InvalidArgument& e) {
        EXPECT_THAT(e.what(), HasSubstr(needle));
      }
    }
    Model model;
    auto opt = make_communicating_optimizer(
        comm, OptimizerSpec::parse("onebit_lamb:freeze_step=3,max_coeff=0.3"), model.groups());
    ASSERT_NE(opt, nullptr);
    EXPECT_TRUE(is_communicating_optimizer("onebit_lamb"));
    EXPECT_EQ(opt->options(0).at("max_coeff"), "0.3");
    EXPECT_EQ(opt->options(0).at("factor_max"), "4");
    EXPECT_EQ(opt->state_bytes(), static_cast<size_t>(4 * (3 * kTotal + 208 + 208) + 4 * 24));
  });
}

}  // namespace
}  // namespace terse

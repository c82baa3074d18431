// frugal: from its definition. With inactive_lr_scale=0.25 the state-free entries move by exactly
// lr/4 * sign(g) while the AdamW entries move by about lr at a subspace's first step, so which
// entries are in the subspace can be read off the parameters.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "optim_test_util.h"
#include "terse/core/error.h"
#include "terse/optim/optimizer.h"

namespace terse {
namespace {

struct Tensor {
  std::vector<float> value, grad;
  std::vector<int64_t> shape;
  Param param(const std::string& name = "") {
    return Param{TensorView::of(value.data(), static_cast<int64_t>(value.size())),
                 TensorView::of(grad.data(), static_cast<int64_t>(grad.size())), shape, name};
  }
};

Tensor make_tensor(std::vector<int64_t> shape, uint32_t seed) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(0.5f, 2.0f);
  Tensor t{std::vector<float>(static_cast<size_t>(n)), std::vector<float>(static_cast<size_t>(n)),
           shape};
  for (auto& v : t.value) v = dist(rng);
  for (size_t i = 0; i < t.grad.size(); ++i) t.grad[i] = (i % 3 == 0 ? -1.0f : 1.0f) * dist(rng);
  return t;
}

std::unique_ptr<Optimizer> make(const OptionMap& o, std::vector<Tensor*> ts) {
  std::vector<ParamGroup> g(1);
  for (size_t i = 0; i < ts.size(); ++i)
    g[0].params.push_back(ts[i]->param("t" + std::to_string(i)));
  return make_optimizer(OptimizerSpec{"frugal", o}, std::move(g));
}

// Per entry of one step from `before`: 1 = sign-SGD with lr * scale exactly, 0 = something else.
std::vector<int> sign_sgd_entries(const Tensor& t, const std::vector<float>& before, float lr,
                                  float scale, float wd) {
  std::vector<int> out(before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    const float s = static_cast<float>((t.grad[i] > 0) - (t.grad[i] < 0));
    const float expect = before[i] * (1.0f - lr * wd) + (-(lr * scale)) * s;
    out[i] = t.value[i] == expect ? 1 : 0;
  }
  return out;
}

const OptionMap kBase{{"lr", "0.01"}, {"weight_decay", "0.1"}, {"inactive_lr_scale", "0.25"}};

OptionMap with(OptionMap o, const OptionMap& more) {
  for (const auto& [k, v] : more) o[k] = v;
  return o;
}

TEST(Frugal, BlockModeStateOnlyForActiveBlocksRestFollowsSignSgd) {
  std::vector<Tensor> ts;
  for (uint32_t i = 0; i < 4; ++i) ts.push_back(make_tensor({3, 5}, i));
  Tensor bias = make_tensor({5}, 9);
  auto opt = make(with(kBase, {{"density", "0.5"}}), {&ts[0], &ts[1], &ts[2], &ts[3], &bias});
  std::vector<std::vector<float>> before;
  for (auto& t : ts) before.push_back(t.value);
  opt->step();
  // round(4 * 0.5) = 2 active blocks with 2 x 15 floats each, the bias' full AdamW 2 x 5.
  EXPECT_EQ(opt->state_bytes(), (2 * 2 * 15 + 2 * 5) * sizeof(float));
  const StateDict sd = opt->state_dict();
  int active = 0;
  for (size_t i = 0; i < 4; ++i) {
    const bool has = sd.tensors.count("state." + std::to_string(i) + ".exp_avg") == 1;
    active += has ? 1 : 0;
    const auto sgd = sign_sgd_entries(ts[i], before[i], 0.01f, 0.25f, 0.1f);
    for (int s : sgd) EXPECT_EQ(s, has ? 0 : 1) << "block " << i << " active=" << has;
  }
  EXPECT_EQ(active, 2);
  EXPECT_EQ(sd.tensors.count("state.4.exp_avg_sq"), 1u);
}

std::set<size_t> active_blocks(const Optimizer& opt, size_t n) {
  std::set<size_t> s;
  const StateDict sd = opt.state_dict();
  for (size_t i = 0; i < n; ++i) {
    if (sd.tensors.count("state." + std::to_string(i) + ".exp_avg")) s.insert(i);
  }
  return s;
}

TEST(Frugal, RefreshEveryUpdateGapStepsInBlockOrder) {
  std::vector<Tensor> ts;
  for (uint32_t i = 0; i < 4; ++i) ts.push_back(make_tensor({2, 2}, i));
  for (const char* order : {"ascending", "descending"}) {
    auto opt = make(with(kBase, {{"update_gap", "2"}, {"block_order", order}}),
                    {&ts[0], &ts[1], &ts[2], &ts[3]});
    const bool asc = std::string(order) == "ascending";
    const std::vector<size_t> expect = asc ? std::vector<size_t>{0, 0, 1, 1, 2, 2, 3, 3, 0}
                                           : std::vector<size_t>{3, 3, 2, 2, 1, 1, 0, 0, 3};
    for (size_t step = 0; step < expect.size(); ++step) {
      opt->step();
      EXPECT_EQ(active_blocks(*opt, 4), std::set<size_t>{expect[step]})
          << order << " step " << step + 1;
    }
  }
  auto mirror =
      make(with(kBase, {{"density", "0.5"}, {"update_gap", "1"}, {"block_order", "mirror"}}),
           {&ts[0], &ts[1], &ts[2], &ts[3]});
  mirror->step();
  EXPECT_EQ(active_blocks(*mirror, 4), (std::set<size_t>{0, 3}));
  mirror->step();
  EXPECT_EQ(active_blocks(*mirror, 4), (std::set<size_t>{1, 2}));
}

TEST(Frugal, RandomSubspaceIsAFunctionOfTheSeed) {
  std::vector<Tensor> ts;
  for (uint32_t i = 0; i < 8; ++i) ts.push_back(make_tensor({2, 2}, i));
  std::vector<Tensor*> ptrs;
  for (auto& t : ts) ptrs.push_back(&t);
  auto run = [&](const char* seed) {
    auto opt = make(with(kBase, {{"update_gap", "1"}, {"seed", seed}}), ptrs);
    std::vector<std::set<size_t>> sets;
    for (int s = 0; s < 6; ++s) {
      opt->step();
      sets.push_back(active_blocks(*opt, 8));
      EXPECT_EQ(sets.back().size(), 2u);  // round(8 * 0.25)
    }
    return sets;
  };
  const auto a = run("7"), b = run("7"), c = run("8");
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::set<std::set<size_t>> distinct(a.begin(), a.end());
  EXPECT_GT(distinct.size(), 1u);  // refreshes draw new blocks
}

TEST(Frugal, CoordModesSubspaceShapeAndSize) {
  struct Case {
    const char* choice;
    size_t active;  // entries in the subspace of a (6, 8) matrix at density 0.3
  } cases[] = {{"random", 14}, {"columns", 6 * 2}, {"rows", 1 * 8}};
  for (const auto& c : cases) {
    Tensor t = make_tensor({6, 8}, 1);
    const std::vector<float> before = t.value;
    auto opt = make(
        with(kBase, {{"subspace", "coord"}, {"coord_choice", c.choice}, {"density", "0.3"}}), {&t});
    opt->step();
    EXPECT_EQ(opt->state_bytes(), 2 * c.active * sizeof(float) + 8) << c.choice;  // + 48-bit mask
    const auto sgd = sign_sgd_entries(t, before, 0.01f, 0.25f, 0.1f);
    size_t adam = 0;
    std::set<size_t> rows, cols;
    for (size_t i = 0; i < sgd.size(); ++i) {
      if (sgd[i]) continue;
      ++adam;
      rows.insert(i / 8);
      cols.insert(i % 8);
      // The first AdamW step moves by about lr (m / sqrt(v) = sign(g)), not lr / 4.
      EXPECT_NEAR(std::fabs(t.value[i] - before[i] * (1 - 0.001f)), 0.01f, 1e-4) << c.choice;
    }
    EXPECT_EQ(adam, c.active) << c.choice;
    if (std::string(c.choice) == "columns") {
      EXPECT_EQ(cols.size(), 2u);
    }
    if (std::string(c.choice) == "rows") {
      EXPECT_EQ(rows.size(), 1u);
    }
  }
}

TEST(Frugal, ResetStatisticsRestartsBiasCorrection) {
  // Constant gradients: restarted moments give |update| = lr every step (m / sqrt(v) = sign(g)
  // after bias correction), as do kept ones; the moments differ, which the state shows.
  for (bool reset : {true, false}) {
    Tensor t = make_tensor({4, 4}, 2);
    auto opt = make(with(kBase, {{"subspace", "coord"},
                                 {"coord_choice", "random"},
                                 {"update_gap", "2"},
                                 {"density", "0.5"},
                                 {"reset_statistics", reset ? "true" : "false"}}),
                    {&t});
    opt->step();
    opt->step();
    const auto m2 = opt->state_dict().tensors.at("state.0.exp_avg").bytes;
    opt->step();  // refresh at step 3
    const StateDict sd = opt->state_dict();
    const auto& st = sd.tensors.at("state.0.exp_avg");
    std::vector<float> m(st.bytes.size() / 4);
    std::memcpy(m.data(), st.bytes.data(), st.bytes.size());
    std::vector<float> prev(m2.size() / 4);
    std::memcpy(prev.data(), m2.data(), m2.size());
    double max_m = 0, max_prev = 0;
    for (float v : m) max_m = std::max(max_m, double{std::fabs(v)});
    for (float v : prev) max_prev = std::max(max_prev, double{std::fabs(v)});
    // Reset: m = 0.1 g after one step (|g| <= 2); kept: m keeps growing past 0.19 |g|.
    if (reset) {
      EXPECT_LE(max_m, 0.2 + 1e-6);
    } else {
      EXPECT_GT(max_m, max_prev);
    }
  }
}

TEST(Frugal, OneDimensionalAndUnprojectedParamsTakeFullAdamW) {
  Tensor bias = make_tensor({4}, 3), w = make_tensor({2, 3}, 4);
  std::vector<ParamGroup> g(2);
  g[0].params = {bias.param()};
  g[1].params = {w.param()};
  g[1].overrides = {{"is_proj_params", "false"}};
  auto opt = make_optimizer(OptimizerSpec{"frugal", kBase}, std::move(g));
  const float b0 = bias.value[0];
  opt->step();
  EXPECT_EQ(opt->state_bytes(), 2 * (4 + 6) * sizeof(float));
  // torch-form AdamW step 1: p * (1 - lr wd) - lr * g / (|g| + eps)
  const float gb = bias.grad[0];
  EXPECT_NEAR(bias.value[0], b0 * (1 - 0.001f) - 0.01f * gb / (std::fabs(gb) + 1e-8f), 1e-6);
}

TEST(Frugal, StateDictRoundTripMidInterval) {
  for (const char* mode : {"block", "coord"}) {
    std::vector<Tensor> a, b;
    for (uint32_t i = 0; i < 4; ++i) a.push_back(make_tensor({4, 6}, 10 + i));
    b = a;
    const OptionMap o =
        with(kBase,
             {{"subspace", mode}, {"update_gap", "3"}, {"seed", "5"}, {"coord_choice", "random"}});
    auto oa = make(o, {&a[0], &a[1], &a[2], &a[3]});
    auto ob = make(o, {&b[0], &b[1], &b[2], &b[3]});
    for (int s = 0; s < 4; ++s) oa->step();  // refreshed at 1 and 4
    for (size_t i = 0; i < 4; ++i) b[i].value = a[i].value;
    ob->load_state_dict(oa->state_dict());
    EXPECT_EQ(ob->state_bytes(), oa->state_bytes()) << mode;
    for (int s = 0; s < 5; ++s) {
      for (size_t i = 0; i < 4; ++i) {
        for (auto& g : a[i].grad) g = -0.7f * g + 0.1f;
        b[i].grad = a[i].grad;
      }
      oa->step();
      ob->step();
    }
    for (size_t i = 0; i < 4; ++i) EXPECT_EQ(a[i].value, b[i].value) << mode << " tensor " << i;
  }
}

TEST(Frugal, BadOptions) {
  using test::expect_invalid;
  expect_invalid("frugal:density=1.5", {"density", "[0, 1]", "1.5"});
  expect_invalid("frugal:update_gap=0", {"update_gap", "whole number"});
  expect_invalid("frugal:update_gap=2.5", {"update_gap"});
  expect_invalid("frugal:subspace=svd", {"subspace", "svd", "block, coord"});
  expect_invalid("frugal:inactive_update_rule=adam", {"inactive_update_rule", "sign_sgd"});
  expect_invalid("frugal:inactive_lr_scale=-1", {"inactive_lr_scale"});
  expect_invalid("frugal:seed=-1", {"seed"});
  expect_invalid("frugal:betas=1/0.9", {"betas"});
  expect_invalid("frugal:rank=4", {"unknown option 'rank'", "density", "coord_choice"});
  // mirror activates pairs: round(3 * 1/3) = 1 block is odd.
  Tensor a = make_tensor({2, 2}, 1), b = make_tensor({2, 2}, 2), c = make_tensor({2, 2}, 3);
  EXPECT_THROW(make(with(kBase, {{"block_order", "mirror"}, {"density", "0.34"}}), {&a, &b, &c}),
               InvalidArgument);
}

}  // namespace
}  // namespace terse

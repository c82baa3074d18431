// auon: hand-computed steps of the official form and the paper form, the zero-gradient skip,
// options, state.

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "optim_test_util.h"
#include "terse/core/error.h"
#include "terse/optim/optimizer.h"

namespace terse {
namespace {

using test::Buffers;

struct Expected {
  std::vector<double> p, m;
};

// One official AuON step in double (ryyzn9/AuON AuON.step).
void reference_step(Expected& e, const std::vector<float>& g, double lr, double beta, double wd,
                    double gamma, bool paper) {
  const size_t n = g.size();
  if (wd != 0) {
    for (auto& p : e.p) p *= 1 - lr * wd;
  }
  std::vector<double> G(n);
  double ss = 0;
  for (size_t i = 0; i < n; ++i) {
    e.m[i] = beta * e.m[i] + (1 - beta) * g[i];
    G[i] = (1 - beta) * g[i] + beta * e.m[i];
    ss += G[i] * G[i];
  }
  const double norm = std::sqrt(ss);
  if (norm == 0) return;
  double sc = 0;
  for (size_t i = 0; i < n; ++i) {
    const double c = std::cosh((paper ? 1.0 : gamma) * G[i] / (norm + 1e-7));
    sc += c * c;
  }
  const double r = std::sqrt(sc / static_cast<double>(n));
  for (size_t i = 0; i < n; ++i) {
    const double u = paper ? (G[i] / (norm + 1e-7)) / (r + 1e-8) : G[i] / (r + 1e-8);
    e.p[i] -= lr * u;
  }
}

TEST(Auon, HandComputedStepsOfBothForms) {
  for (bool paper : {false, true}) {
    Buffers b{{0.5f, -1.0f, 2.0f, 0.25f, -0.75f}, {0.3f, -2.0f, 1.5f, 0.0f, 4.0f}};
    auto opt = make_optimizer(std::string("auon:lr=0.1,momentum=0.9,weight_decay=0.2,gamma=2,") +
                                  "paper=" + (paper ? "true" : "false"),
                              {b.param()});
    Expected e{std::vector<double>(b.value.begin(), b.value.end()), std::vector<double>(5, 0.0)};
    for (int step = 0; step < 3; ++step) {
      if (step == 1) b.grad = {-1.0f, 0.5f, 0.5f, 2.0f, -0.1f};
      opt->step();
      reference_step(e, b.grad, 0.1, 0.9, 0.2, 2.0, paper);
      for (size_t i = 0; i < 5; ++i) {
        EXPECT_NEAR(b.value[i], e.p[i], 1e-5) << "paper=" << paper << " step " << step;
      }
    }
  }
}

TEST(Auon, ZeroUpdateOnlyDecays) {
  Buffers b{{1.0f, -2.0f}, {0.0f, 0.0f}};
  auto opt = make_optimizer("auon:lr=0.5,weight_decay=0.1", {b.param()});
  opt->step();
  EXPECT_FLOAT_EQ(b.value[0], 1.0f * (1 - 0.05f));
  EXPECT_FLOAT_EQ(b.value[1], -2.0f * (1 - 0.05f));
}

TEST(Auon, StateBytesAndRoundTrip) {
  Buffers a{{1, 2, 3, 4}, {0.5f, -1, 2, 0.1f}}, c = a;
  auto oa = make_optimizer("auon", {a.param()});
  auto oc = make_optimizer("auon", {c.param()});
  EXPECT_EQ(oa->state_bytes(), 0u);
  oa->step();
  EXPECT_EQ(oa->state_bytes(), 4 * sizeof(float));
  EXPECT_EQ(oa->state_dict().tensors.count("state.0.momentum_buffer"), 1u);
  c.value = a.value;
  oc->load_state_dict(oa->state_dict());
  a.grad = c.grad = {-1, 1, -1, 1};
  oa->step();
  oc->step();
  EXPECT_EQ(a.value, c.value);
}

TEST(Auon, BadOptions) {
  using test::expect_invalid;
  expect_invalid("auon:momentum=1.5", {"momentum", "[0, 1]", "1.5"});
  expect_invalid("auon:gamma=0", {"gamma", "> 0"});
  expect_invalid("auon:weight_decay=-1", {"weight_decay"});
  expect_invalid("auon:nesterov=true", {"unknown option 'nesterov'", "gamma"});
}

}  // namespace
}  // namespace terse

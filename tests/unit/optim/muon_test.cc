// muon: Newton-Schulz output, shapes, hand-computed momentum (ns_steps=0 makes the update
// u / (||u|| + 1e-7), computable by hand), the aux Adam, options, state.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "optim_test_util.h"
#include "terse/core/error.h"
#include "terse/optim/newton_schulz.h"
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
  std::normal_distribution<float> dist;
  Tensor t{std::vector<float>(static_cast<size_t>(n)), std::vector<float>(static_cast<size_t>(n)),
           shape};
  for (auto& v : t.value) v = dist(rng);
  for (auto& v : t.grad) v = dist(rng);
  return t;
}

std::vector<ParamGroup> groups_of(std::vector<Param> params) {
  std::vector<ParamGroup> g(1);
  g[0].params = std::move(params);
  return g;
}

// Eigenvalues of a symmetric matrix (cyclic Jacobi), for singular values via X X^T.
std::vector<double> eigenvalues(std::vector<double> a, int n) {
  for (int sweep = 0; sweep < 60; ++sweep) {
    for (int p = 0; p < n; ++p) {
      for (int q = p + 1; q < n; ++q) {
        const double apq = a[p * n + q];
        if (std::fabs(apq) < 1e-300) continue;
        const double th = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const double t = (th >= 0 ? 1 : -1) / (std::fabs(th) + std::sqrt(th * th + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int k = 0; k < n; ++k) {
          const double kp = a[k * n + p], kq = a[k * n + q];
          a[k * n + p] = c * kp - s * kq;
          a[k * n + q] = s * kp + c * kq;
        }
        for (int k = 0; k < n; ++k) {
          const double pk = a[p * n + k], qk = a[q * n + k];
          a[p * n + k] = c * pk - s * qk;
          a[q * n + k] = s * pk + c * qk;
        }
      }
    }
  }
  std::vector<double> ev(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) ev[static_cast<size_t>(i)] = a[i * n + i];
  return ev;
}

std::vector<double> singular_values(const std::vector<float>& x, int rows, int cols) {
  std::vector<double> g(static_cast<size_t>(rows * rows));
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < rows; ++j) {
      double s = 0;
      for (int k = 0; k < cols; ++k) s += double{x[i * cols + k]} * x[j * cols + k];
      g[static_cast<size_t>(i * rows + j)] = s;
    }
  }
  auto ev = eigenvalues(g, rows);
  for (auto& v : ev) v = std::sqrt(std::max(v, 0.0));
  return ev;
}

TEST(NewtonSchulz, SingularValuesLandInTheQuinticBand) {
  for (bool bf16 : {false, true}) {
    Tensor t = make_tensor({16, 40}, 3);
    NewtonSchulzOptions o;
    o.bf16 = bf16;
    NewtonSchulz ns;
    const auto before = singular_values(t.grad, 16, 40);
    ns.run(t.grad.data(), 1, 16, 40, o);
    for (double s : singular_values(t.grad, 16, 40)) {
      EXPECT_GT(s, 0.6) << "bf16=" << bf16;
      EXPECT_LT(s, 1.25) << "bf16=" << bf16;
    }
    // The input was far from orthogonal (spread over a factor > 3).
    EXPECT_GT(*std::max_element(before.begin(), before.end()),
              3 * *std::min_element(before.begin(), before.end()));
  }
}

TEST(NewtonSchulz, TallIsTheTransposeOfWideAndBatchesAreIndependent) {
  Tensor t = make_tensor({5, 9}, 4);
  std::vector<float> wide = t.grad, tall(45);
  for (int r = 0; r < 5; ++r) {
    for (int c = 0; c < 9; ++c) tall[c * 5 + r] = wide[r * 9 + c];
  }
  NewtonSchulz ns;
  NewtonSchulzOptions o;
  o.bf16 = false;
  ns.run(wide.data(), 1, 5, 9, o);
  ns.run(tall.data(), 1, 9, 5, o);
  for (int r = 0; r < 5; ++r) {
    for (int c = 0; c < 9; ++c) EXPECT_FLOAT_EQ(tall[c * 5 + r], wide[r * 9 + c]);
  }
  Tensor u = make_tensor({5, 9}, 5);
  std::vector<float> batch = t.grad;
  batch.insert(batch.end(), u.grad.begin(), u.grad.end());
  std::vector<float> second = u.grad;
  ns.run(batch.data(), 2, 5, 9, o);
  ns.run(second.data(), 1, 5, 9, o);
  for (int k = 0; k < 45; ++k) {
    EXPECT_FLOAT_EQ(batch[static_cast<size_t>(k)], wide[static_cast<size_t>(k)]);
    EXPECT_FLOAT_EQ(batch[static_cast<size_t>(45 + k)], second[static_cast<size_t>(k)]);
  }
}

TEST(NewtonSchulz, Bf16ModeOutputsBf16Values) {
  Tensor t = make_tensor({4, 6}, 6);
  NewtonSchulz ns;
  ns.run(t.grad.data(), 1, 4, 6, NewtonSchulzOptions{});
  for (float v : t.grad) EXPECT_EQ(v, to_float(to_bfloat16(v)));
}

// Expected update of a (rows, cols) block of u with ns_steps=0: u / (||u||_F + 1e-7).
std::vector<double> normalised(const std::vector<double>& u) {
  double s = 0;
  for (double v : u) s += v * v;
  std::vector<double> out(u.size());
  for (size_t i = 0; i < u.size(); ++i) out[i] = u[i] / (std::sqrt(s) + 1e-7);
  return out;
}

TEST(Muon, HandComputedMomentumNesterovAndPlain) {
  for (bool nesterov : {true, false}) {
    Tensor t = make_tensor({3, 4}, 7);
    const std::vector<float> p0 = t.value;
    const double lr = 0.1, beta = 0.9, wd = 0.5;
    auto opt = make_optimizer(OptimizerSpec{"muon",
                                            {{"lr", "0.1"},
                                             {"momentum", "0.9"},
                                             {"weight_decay", "0.5"},
                                             {"ns_steps", "0"},
                                             {"ns_bf16", "false"},
                                             {"nesterov", nesterov ? "true" : "false"}}},
                              groups_of({t.param()}));
    std::vector<double> m(12, 0.0), p(p0.begin(), p0.end());
    for (int step = 0; step < 3; ++step) {
      // Gradients that are not multiples of each other: the normalisation would hide a wrong
      // mix of g and m otherwise.
      if (step > 0) {
        const auto g = make_tensor({3, 4}, 30 + static_cast<uint32_t>(step)).grad;
        std::copy(g.begin(), g.end(), t.grad.begin());  // in place: the Param views t.grad
      }
      opt->step();
      std::vector<double> u(12);
      for (size_t i = 0; i < 12; ++i) {
        m[i] = beta * m[i] + (1 - beta) * t.grad[i];
        u[i] = nesterov ? (1 - beta) * t.grad[i] + beta * m[i] : m[i];
      }
      const auto x = normalised(u);
      for (size_t i = 0; i < 12; ++i) {
        p[i] = p[i] * (1 - lr * wd) - lr * x[i];
        EXPECT_NEAR(t.value[i], p[i], 1e-5) << "nesterov=" << nesterov << " step " << step;
      }
    }
  }
}

// One step with ns_steps=0 from zero state: U = g / ||g|| per matrix, times the scale.
void expect_one_step(std::vector<int64_t> shape, int64_t matrix, double scale) {
  Tensor t = make_tensor(shape, 11);
  const std::vector<float> p0 = t.value;
  auto opt =
      make_optimizer(OptimizerSpec{"muon", {{"lr", "1"}, {"ns_steps", "0"}, {"ns_bf16", "false"}}},
                     groups_of({t.param()}));
  opt->step();
  for (size_t b = 0; b < t.grad.size(); b += static_cast<size_t>(matrix)) {
    std::vector<double> g(t.grad.begin() + static_cast<long>(b),
                          t.grad.begin() + static_cast<long>(b + static_cast<size_t>(matrix)));
    const auto x = normalised(g);
    for (size_t i = 0; i < x.size(); ++i) {
      EXPECT_NEAR(t.value[b + i], p0[b + i] - scale * x[i], 1e-5) << "shape[0] " << shape[0];
    }
  }
}

TEST(Muon, ShapesWideTall4dAndBatched) {
  expect_one_step({3, 5}, 15, 1.0);                   // wide: no scale
  expect_one_step({5, 3}, 15, std::sqrt(5.0 / 3.0));  // tall: sqrt(rows / cols)
  expect_one_step({2, 3, 2, 2}, 24, 1.0);             // 4-D: one (2, 12) matrix
  expect_one_step({2, 1, 3, 2}, 12, std::sqrt(1.5));  // 4-D: the reference scales by kh / kw
  expect_one_step({2, 3, 4}, 12, 1.0);                // 3-D: a batch of two (3, 4) matrices
}

TEST(Muon, OneDimensionalParamsTakeTheAuxAdam) {
  Tensor bias = make_tensor({4}, 12);
  Tensor w = make_tensor({2, 2}, 13);
  const std::vector<float> b0 = bias.value;
  auto opt = make_optimizer(OptimizerSpec{"muon",
                                          {{"adam_lr", "0.01"},
                                           {"adam_betas", "0.8/0.9"},
                                           {"adam_eps", "1e-3"},
                                           {"adam_weight_decay", "0.2"}}},
                            groups_of({w.param(), bias.param()}));
  std::vector<double> m(4, 0), v(4, 0), p(b0.begin(), b0.end());
  for (int t = 1; t <= 2; ++t) {
    opt->step();
    for (size_t i = 0; i < 4; ++i) {
      const double g = bias.grad[i];
      m[i] = 0.8 * m[i] + 0.2 * g;
      v[i] = 0.9 * v[i] + 0.1 * g * g;
      const double upd =
          (m[i] / (1 - std::pow(0.8, t))) / (std::sqrt(v[i] / (1 - std::pow(0.9, t))) + 1e-3);
      p[i] = p[i] * (1 - 0.01 * 0.2) - 0.01 * upd;
      EXPECT_NEAR(bias.value[i], p[i], 1e-6) << "step " << t;
    }
  }
  // use_muon=false sends matrices to the Adam too: 2 buffers per parameter.
  Tensor w2 = make_tensor({2, 2}, 14);
  auto adam_only =
      make_optimizer(OptimizerSpec{"muon", {{"use_muon", "false"}}}, groups_of({w2.param()}));
  adam_only->step();
  EXPECT_EQ(adam_only->state_bytes(), 2 * 4 * sizeof(float));
  EXPECT_EQ(adam_only->state_dict().tensors.count("state.0.exp_avg"), 1u);
}

TEST(Muon, StateBytesAndNames) {
  Tensor w = make_tensor({3, 4}, 15), b = make_tensor({3}, 16);
  auto opt = make_optimizer(OptimizerSpec{"muon", {}}, groups_of({w.param(), b.param()}));
  EXPECT_EQ(opt->state_bytes(), 0u);
  opt->step();
  EXPECT_EQ(opt->state_bytes(), (12 + 2 * 3) * sizeof(float));
  const StateDict sd = opt->state_dict();
  EXPECT_EQ(sd.tensors.count("state.0.momentum_buffer"), 1u);
  EXPECT_EQ(sd.tensors.count("state.1.exp_avg_sq"), 1u);
  EXPECT_EQ(sd.tensors.size(), 3u);
}

TEST(Muon, StateDictRoundTrip) {
  Tensor w = make_tensor({4, 6}, 17), b = make_tensor({4}, 18);
  Tensor w2 = w, b2 = b;
  auto a = make_optimizer(OptimizerSpec{"muon", {}}, groups_of({w.param(), b.param()}));
  auto c = make_optimizer(OptimizerSpec{"muon", {}}, groups_of({w2.param(), b2.param()}));
  a->step();
  a->step();
  w2.value = w.value;
  b2.value = b.value;
  c->load_state_dict(a->state_dict());
  EXPECT_EQ(c->step_count(), 2);
  EXPECT_EQ(c->state_dict(), a->state_dict());
  for (int i = 0; i < 2; ++i) {
    for (auto& g : w.grad) g *= -1.5f;
    w2.grad = w.grad;
    a->step();
    c->step();
  }
  EXPECT_EQ(w.value, w2.value);
  EXPECT_EQ(b.value, b2.value);
  // A state dict from another optimizer is refused.
  Tensor x = make_tensor({4, 6}, 19), y = make_tensor({4}, 20);
  auto adam = make_optimizer(OptimizerSpec{"adam", {}}, groups_of({x.param(), y.param()}));
  adam->step();
  EXPECT_THROW(c->load_state_dict(adam->state_dict()), InvalidArgument);
}

TEST(Muon, Bf16ParamsStep) {
  std::vector<BFloat16> v(12), g(12);
  for (int i = 0; i < 12; ++i) {
    v[static_cast<size_t>(i)] = to_bfloat16(0.1f * static_cast<float>(i));
    g[static_cast<size_t>(i)] = to_bfloat16(std::sin(static_cast<float>(i)));
  }
  Param p{TensorView::of(v.data(), 12), TensorView::of(g.data(), 12), {3, 4}, "w"};
  auto opt = make_optimizer(OptimizerSpec{"muon", {}}, groups_of({p}));
  opt->step();
  int changed = 0;
  for (int i = 0; i < 12; ++i) {
    const float x = to_float(v[static_cast<size_t>(i)]);
    EXPECT_TRUE(std::isfinite(x));
    changed += x != to_float(to_bfloat16(0.1f * static_cast<float>(i))) ? 1 : 0;
  }
  EXPECT_GT(changed, 6);
}

TEST(Muon, BadOptions) {
  using test::expect_invalid;
  expect_invalid("muon:momentum=1", {"momentum", "[0, 1)", "1"});
  expect_invalid("muon:ns_steps=2.5", {"ns_steps", "whole number", "2.5"});
  expect_invalid("muon:ns_steps=-1", {"ns_steps"});
  expect_invalid("muon:adam_betas=1/0.9", {"adam_betas", "[0, 1)"});
  expect_invalid("muon:adam_eps=0", {"adam_eps", "> 0"});
  expect_invalid("muon:adam_lr=-1", {"adam_lr"});
  expect_invalid("muon:adam_weight_decay=-1", {"adam_weight_decay"});
  expect_invalid("muon:lr=-1", {"lr"});
  expect_invalid("muon:betas=0.9/0.99", {"unknown option 'betas'", "adam_betas"});
}

TEST(Muon, OptionsListsDefaults) {
  Tensor w = make_tensor({2, 2}, 21);
  auto opt = make_optimizer(OptimizerSpec{"muon", {}}, groups_of({w.param()}));
  const OptionMap o = opt->options(0);
  EXPECT_EQ(o.at("lr"), "0.02");
  EXPECT_EQ(o.at("momentum"), "0.95");
  EXPECT_EQ(o.at("nesterov"), "true");
  EXPECT_EQ(o.at("ns_steps"), "5");
  EXPECT_EQ(o.at("adam_lr"), "0.0003");
  EXPECT_EQ(o.at("adam_betas"), "0.9/0.95");
  EXPECT_EQ(o.at("adam_eps"), "1e-10");
}

}  // namespace
}  // namespace terse

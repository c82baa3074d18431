// adam8bit, adamw8bit, momentum8bit, lion8bit: bitsandbytes' 8-bit optimizers (spec
// optimizers.md §10). No golden data exists; these tests check them against the 32-bit
// optimizers they quantize (bit-identical where nothing is quantized, close where states are).

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <list>
#include <random>
#include <string>
#include <vector>

#include "optim_test_util.h"
#include "terse/kernels/blockwise_quant.h"
#include "terse/kernels/cpu_threads.h"
#include "terse/kernels/dynamic_map.h"
#include "terse/optim/optimizer.h"

namespace terse {
namespace {

using test::Buffers;
using test::expect_invalid;

// Elements of a tensor that gets 8-bit states: several blocks and a partial last one.
constexpr int64_t kBig = 16 * kQuantBlockSize + 100;

struct ThreadGuard {
  ~ThreadGuard() { set_cpu_threads(0); }
};

Buffers random_buffers(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Buffers b;
  for (int64_t i = 0; i < n; ++i) {
    b.value.push_back(normal(rng));
    b.grad.push_back(normal(rng));
  }
  return b;
}

void fill_grads(std::vector<float>& grad, int step, uint32_t seed) {
  std::mt19937 rng(seed * 7919u + static_cast<uint32_t>(step));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  // Per-element scales over four decades, as real gradients have.
  for (size_t i = 0; i < grad.size(); ++i) {
    grad[i] = normal(rng) * std::pow(10.0f, static_cast<float>(i % 5) - 3.0f);
  }
}

std::vector<float> dequantized(const StateDict& sd, const std::string& k, int s, bool is_signed) {
  const StateTensor& codes = sd.tensor("state." + k + ".state" + std::to_string(s));
  const StateTensor& absmax = sd.tensor("state." + k + ".absmax" + std::to_string(s));
  EXPECT_EQ(codes.dtype, DType::kU8);
  EXPECT_EQ(absmax.dtype, DType::kF32);
  std::vector<float> out(static_cast<size_t>(codes.numel()));
  dequantize_blockwise(
      codes.bytes.data(), reinterpret_cast<const float*>(absmax.bytes.data()), codes.numel(),
      is_signed ? DynamicMap::signed_map() : DynamicMap::unsigned_map(), out.data());
  return out;
}

const float* f32_state(const StateDict& sd, const std::string& key) {
  const StateTensor& t = sd.tensor(key);
  EXPECT_EQ(t.dtype, DType::kF32) << key;
  return reinterpret_cast<const float*>(t.bytes.data());
}

TEST(EightBit, RegisteredWithBnbsDefaults) {
  Buffers b{{1.0f}, {1.0f}};
  auto adam = make_optimizer("adam8bit", {b.param()});
  EXPECT_STREQ(adam->name(), "adam8bit");
  const OptionMap a = adam->options();
  EXPECT_EQ(a.at("lr"), "0.001");
  EXPECT_EQ(a.at("betas"), "0.9/0.999");
  EXPECT_EQ(a.at("eps"), "1e-08");
  EXPECT_EQ(a.at("weight_decay"), "0");
  EXPECT_EQ(a.at("amsgrad"), "false");
  EXPECT_EQ(a.at("min_8bit_size"), "4096");
  EXPECT_EQ(a.size(), 6u);
  EXPECT_EQ(make_optimizer("adamw8bit", {b.param()})->options().at("weight_decay"), "0.01");
  const OptionMap l = make_optimizer("lion8bit", {b.param()})->options();
  EXPECT_EQ(l.at("lr"), "0.0001");
  EXPECT_EQ(l.at("betas"), "0.9/0.99");
  EXPECT_EQ(l.at("weight_decay"), "0");
  EXPECT_EQ(l.size(), 4u);
  const OptionMap m = make_optimizer("momentum8bit:momentum=0.9", {b.param()})->options();
  EXPECT_EQ(m.at("lr"), "0.001");
  EXPECT_EQ(m.at("momentum"), "0.9");
  EXPECT_EQ(m.at("dampening"), "0");
  EXPECT_EQ(m.at("nesterov"), "false");
  EXPECT_EQ(m.size(), 6u);
  const auto names = optimizer_names();
  for (const char* n : {"adam8bit", "adamw8bit", "momentum8bit", "lion8bit"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  }
}

TEST(EightBit, BadOptionsNameTheOptionAndValue) {
  expect_invalid("adam8bit:amsgrad=true", {"amsgrad=true is not supported", "adam:amsgrad=true"});
  expect_invalid("adam8bit:betas=1/0.999", {"betas must each be in [0, 1)", "1/0.999"});
  expect_invalid("adamw8bit:eps=0", {"eps must be a finite number > 0", "got 0"});
  expect_invalid("adamw8bit:weight_decay=-1", {"weight_decay must be", "-1"});
  expect_invalid("adam8bit:lr=-0.1", {"lr must be", "-0.1"});
  expect_invalid("adam8bit:min_8bit_size=1024",
                 {"min_8bit_size must be an integer >= 4096", "1024"});
  expect_invalid("lion8bit:min_8bit_size=5000.5", {"min_8bit_size", "5000.5"});
  expect_invalid("adam8bit:maximize=true", {"unknown option 'maximize'", "min_8bit_size"});
  expect_invalid("momentum8bit", {"momentum must be in (0, 1), got 0", "momentum=0.9"});
  expect_invalid("momentum8bit:momentum=1", {"momentum must be in (0, 1), got 1"});
  expect_invalid("momentum8bit:momentum=0.9,dampening=0.1",
                 {"dampening must be 0, got 0.1", "no dampening"});
  expect_invalid("momentum8bit:momentum=0.9,nesterov=true", {"nesterov=true is not supported"});
  expect_invalid("lion8bit:betas=0.9/1", {"betas must each be in [0, 1)", "0.9/1"});
  expect_invalid("lion8bit:eps=1e-8", {"unknown option 'eps'"});
}

// Below min_8bit_size the states are f32 and the update is the 32-bit optimizer's, bit for bit
// (Adam with weight_decay = 0: bnb decays after the step, torch before, see AdamW8bitDecays...).
TEST(EightBit, SmallTensorsAreBitIdenticalToThe32BitOptimizers) {
  const std::pair<const char*, const char*> pairs[] = {
      {"adam8bit:lr=0.01,betas=0.8/0.99", "adam:lr=0.01,betas=0.8/0.99"},
      {"adamw8bit:lr=0.01,weight_decay=0", "adamw:lr=0.01,weight_decay=0"},
      {"momentum8bit:lr=0.01,momentum=0.9,weight_decay=0.05",
       "sgd:lr=0.01,momentum=0.9,weight_decay=0.05"},
      {"lion8bit:lr=0.001,weight_decay=0.1", "lion:lr=0.001,weight_decay=0.1"}};
  for (const auto& [eight, full] : pairs) {
    Buffers a = random_buffers(4095, 1), b = a;  // one below bnb's 4096
    auto q = make_optimizer(eight, {a.param()});
    auto f = make_optimizer(full, {b.param()});
    for (int s = 0; s < 20; ++s) {
      fill_grads(a.grad, s, 2);
      b.grad = a.grad;
      q->step();
      f->step();
    }
    EXPECT_EQ(a.value, b.value) << eight;
    EXPECT_EQ(q->state_bytes(), f->state_bytes()) << eight;  // f32 states, same count
    EXPECT_EQ(q->state_dict().tensor("state.0.state1").dtype, DType::kF32) << eight;
  }
}

TEST(EightBit, AdamW8bitDecaysAfterTheStepAndAdam8bitDecaysToo) {
  // m = 0.1 g, v = 0.001 g^2: the bias-corrected step is lr * g / (|g| + eps) ~ lr * sign(g).
  for (const char* name : {"adam8bit", "adamw8bit"}) {
    for (const int64_t n : {int64_t{1}, kBig}) {  // f32 and 8-bit states: same first step
      Buffers b{std::vector<float>(static_cast<size_t>(n), 1.0f),
                std::vector<float>(static_cast<size_t>(n), 0.5f)};
      auto opt = make_optimizer(std::string(name) + ":lr=0.1,weight_decay=0.1", {b.param()});
      opt->step();
      const float step = 0.1f * (0.5f / (0.5f + 1e-8f));
      // bnb: (p - step) * (1 - lr*wd); torch's AdamW would give p * (1 - lr*wd) - step.
      EXPECT_NEAR(b.value[0], (1.0f - step) * 0.99f, 1e-7) << name << " n=" << n;
      EXPECT_NEAR(b.value[n - 1], (1.0f - step) * 0.99f, 1e-7) << name << " n=" << n;
    }
  }
}

// The update uses this step's f32 states and only what is stored is quantized, so step 1 of an
// 8-bit tensor equals the 32-bit one and the stored states are its states, quantized.
TEST(EightBit, FirstStepMatches32BitAndStoresItsStatesQuantized) {
  const std::pair<const char*, const char*> pairs[] = {
      {"adam8bit:lr=0.01", "adam:lr=0.01"},
      {"momentum8bit:lr=0.01,momentum=0.9", "sgd:lr=0.01,momentum=0.9"},
      {"lion8bit:lr=0.001", "lion:lr=0.001"}};
  for (const auto& [eight, full] : pairs) {
    Buffers a = random_buffers(kBig, 4), b = a;
    fill_grads(a.grad, 0, 5);
    b.grad = a.grad;
    auto q = make_optimizer(eight, {a.param()});
    auto f = make_optimizer(full, {b.param()});
    q->step();
    f->step();
    EXPECT_EQ(a.value, b.value) << eight;
    const StateDict qs = q->state_dict(), fs = f->state_dict();
    const bool adam = std::string(eight).rfind("adam", 0) == 0;
    const std::string s1_name = eight[0] == 'm' ? "momentum_buffer" : "exp_avg";
    const float* m32 = f32_state(fs, "state.0." + s1_name);
    const std::vector<float> m8 = dequantized(qs, "0", 1, true);
    const auto* absmax = reinterpret_cast<const float*>(qs.tensor("state.0.absmax1").bytes.data());
    EXPECT_EQ(qs.tensor("state.0.absmax1").numel(), quant_num_blocks(kBig));
    const float half_gap = DynamicMap::signed_map().max_gap() / 2;
    for (int64_t i = 0; i < kBig; ++i) {
      const float am = absmax[i / kQuantBlockSize];
      ASSERT_LE(std::fabs(m8[i] - m32[i]), (half_gap + 1e-6f) * am) << eight << " " << i;
      if (m32[i] != 0) {
        ASSERT_EQ(std::signbit(m8[i]), std::signbit(m32[i])) << eight << " " << i;
      }
    }
    if (adam) {
      const float* v32 = f32_state(fs, "state.0.exp_avg_sq");
      const std::vector<float> v8 = dequantized(qs, "0", 2, false);
      const auto* absmax2 =
          reinterpret_cast<const float*>(qs.tensor("state.0.absmax2").bytes.data());
      const float uhalf = DynamicMap::unsigned_map().max_gap() / 2;
      for (int64_t i = 0; i < kBig; ++i) {
        ASSERT_LE(std::fabs(v8[i] - v32[i]), (uhalf + 1e-6f) * absmax2[i / kQuantBlockSize]);
      }
    }
    // Step 2 reads the quantized states: no longer the same bits.
    fill_grads(a.grad, 1, 5);
    b.grad = a.grad;
    q->step();
    f->step();
    EXPECT_NE(a.value, b.value) << eight;
  }
}

// f(θ) = ½ Σ h_i (θ_i − c_i)², h_i in [0.5, 2]: 200 steps of each 8-bit optimizer and its
// 32-bit counterpart from the same start stay close, in loss and in parameters.
struct Quadratic {
  std::vector<float> h, c;
  Buffers b;
  explicit Quadratic(int64_t n) {
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> hd(0.5f, 2.0f);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (int64_t i = 0; i < n; ++i) {
      h.push_back(hd(rng));
      c.push_back(normal(rng));
      b.value.push_back(normal(rng));
    }
    b.grad.resize(b.value.size());
  }
  void grad() {
    for (size_t i = 0; i < h.size(); ++i) b.grad[i] = h[i] * (b.value[i] - c[i]);
  }
  double loss() const {
    double l = 0;
    for (size_t i = 0; i < h.size(); ++i) {
      const double d = b.value[i] - c[i];
      l += 0.5 * h[i] * d * d;
    }
    return l;
  }
};

TEST(EightBit, TwoHundredStepsStayCloseTo32Bit) {
  struct Case {
    const char *eight, *full;
    double loss_tol;   // max over the steps of |L8 − L32| / L0
    double param_tol;  // ‖θ8 − θ32‖ / ‖θ32 − θ0‖ after 200 steps
  };
  // Seen: adam/adamw 1.8e-3 and 2.5e-2, momentum 3.0e-3 and 3.7e-6, lion 3.7e-4 and 0.14. Lion
  // moves every element by ±lr: where β1·m + (1 − β1)·g is within the quantization error of 0
  // (elements near their optimum) the sign flips, and those elements random-walk apart by a few
  // lr; the loss, the mean behaviour, stays within 4e-4 of L0.
  const Case cases[] = {
      {"adam8bit:lr=0.01", "adam:lr=0.01", 0.01, 0.1},
      {"adamw8bit:lr=0.01,weight_decay=0.01", "adamw:lr=0.01,weight_decay=0.01", 0.01, 0.1},
      {"momentum8bit:lr=0.01,momentum=0.9", "sgd:lr=0.01,momentum=0.9", 0.01, 1e-3},
      {"lion8bit:lr=0.001", "lion:lr=0.001", 2e-3, 0.3}};
  for (const Case& k : cases) {
    Quadratic q8(kBig), q32(kBig);
    const std::vector<float> start = q32.b.value;
    auto o8 = make_optimizer(k.eight, {q8.b.param()});
    auto o32 = make_optimizer(k.full, {q32.b.param()});
    const double l0 = q32.loss();
    double worst_loss = 0;
    for (int s = 0; s < 200; ++s) {
      q8.grad();
      q32.grad();
      o8->step();
      o32->step();
      worst_loss = std::max(worst_loss, std::fabs(q8.loss() - q32.loss()) / l0);
    }
    double moved = 0, diff = 0;  // squared L2 norms
    for (size_t i = 0; i < start.size(); ++i) {
      const double m = q32.b.value[i] - start[i], d = q8.b.value[i] - q32.b.value[i];
      moved += m * m;
      diff += d * d;
    }
    moved = std::sqrt(moved);
    diff = std::sqrt(diff);
    // Both made progress, and the 8-bit one really ran on 8-bit states.
    EXPECT_LT(q32.loss(), 0.9 * l0) << k.full;
    EXPECT_LT(q8.loss(), 0.9 * l0) << k.eight;
    EXPECT_LT(o8->state_bytes(), o32->state_bytes() / 3) << k.eight;
    EXPECT_GT(diff, 0.0) << k.eight;
    EXPECT_LT(worst_loss, k.loss_tol) << k.eight;
    EXPECT_LT(diff / moved, k.param_tol) << k.eight << " moved " << moved;
    std::printf("%-40s L0 %.5g loss(200) %.5g vs %.5g, worst |dL|/L0 %.2e, |dθ|/|move| %.2e\n",
                k.eight, l0, q8.loss(), q32.loss(), worst_loss, diff / moved);
  }
}

TEST(EightBit, StateBytesAreCodesPlusAbsmaxAtLeast70PercentBelow32Bit) {
  const int64_t n = int64_t{1} << 20;
  const auto blocks = static_cast<size_t>(quant_num_blocks(n));
  const struct {
    const char *eight, *full;
    size_t states;
  } cases[] = {{"adam8bit", "adam", 2},
               {"momentum8bit:momentum=0.9", "sgd:momentum=0.9", 1},
               {"lion8bit", "lion", 1}};
  for (const auto& k : cases) {
    Buffers a{std::vector<float>(static_cast<size_t>(n), 0.0f),
              std::vector<float>(static_cast<size_t>(n), 0.0f)};
    Buffers small{std::vector<float>(10, 0.0f), std::vector<float>(10, 0.0f)};
    auto q = make_optimizer(k.eight, {a.param(), small.param()});
    auto f = make_optimizer(k.full, {a.param(), small.param()});
    EXPECT_EQ(q->state_bytes(), 0u);  // allocated at the first step
    q->step();
    f->step();
    // One byte per element and one f32 absmax per 256 per state; the small tensor in f32.
    EXPECT_EQ(q->state_bytes(), k.states * (static_cast<size_t>(n) + 4 * blocks + 4 * 10));
    EXPECT_EQ(f->state_bytes(), k.states * 4 * static_cast<size_t>(n + 10));
    EXPECT_LE(static_cast<double>(q->state_bytes()), 0.3 * static_cast<double>(f->state_bytes()));
  }
}

TEST(EightBit, StateDictRoundTripThenContinueEqualsUninterrupted) {
  for (const char* spec : {"adamw8bit:lr=0.01", "momentum8bit:lr=0.01,momentum=0.9",
                           "lion8bit:lr=0.001,weight_decay=0.1"}) {
    Buffers big = random_buffers(kBig, 8), small = random_buffers(100, 9);
    Buffers big2 = big, small2 = small;
    auto a = make_optimizer(spec, {big.param("w"), small.param("b")});
    auto b = make_optimizer(spec, {big2.param("w"), small2.param("b")});
    for (int s = 0; s < 3; ++s) {
      fill_grads(big.grad, s, 1);
      fill_grads(small.grad, s, 2);
      big2.grad = big.grad;
      small2.grad = small.grad;
      a->step();
      b->step();
    }
    const StateDict saved = b->state_dict();
    const bool adam = spec[0] == 'a';
    EXPECT_EQ(saved.tensors.size(), adam ? 6u : 3u) << spec;
    EXPECT_EQ(saved.tensor("state.0.state1").dtype, DType::kU8);
    EXPECT_EQ(saved.tensor("state.0.state1").shape, (std::vector<int64_t>{kBig}));
    EXPECT_EQ(saved.tensor("state.0.absmax1").numel(), quant_num_blocks(kBig));
    EXPECT_EQ(saved.tensor("state.1.state1").dtype, DType::kF32);
    EXPECT_EQ(saved.tensors.count("state.1.absmax1"), 0u);
    Buffers big3 = big2, small3 = small2;
    auto c = make_optimizer(spec, {big3.param("w"), small3.param("b")});
    c->load_state_dict(saved);
    EXPECT_EQ(c->state_dict(), saved) << spec;
    EXPECT_EQ(c->state_bytes(), b->state_bytes()) << spec;
    for (int s = 3; s < 6; ++s) {
      fill_grads(big.grad, s, 1);
      fill_grads(small.grad, s, 2);
      big3.grad = big.grad;
      small3.grad = small.grad;
      a->step();
      c->step();
    }
    EXPECT_EQ(big.value, big3.value) << spec;
    EXPECT_EQ(small.value, small3.value) << spec;
    EXPECT_EQ(a->state_dict(), c->state_dict()) << spec;
  }
}

TEST(EightBit, BadStateDictsAreRejectedAndLeaveTheOptimizerUnchanged) {
  Buffers big = random_buffers(kBig, 8);
  auto opt = make_optimizer("adam8bit:lr=0.01", {big.param("w")});
  opt->step();
  const StateDict good = opt->state_dict();
  std::list<Buffers> copies;  // each optimizer below steps its own copy
  auto fresh = [&](const std::string& spec) {
    copies.push_back(big);
    return make_optimizer(spec, {copies.back().param("w")});
  };
  {
    auto target = fresh("adam8bit:lr=0.01");
    target->step();
    target->step();
    const StateDict before = target->state_dict();
    StateDict bad = good;
    reinterpret_cast<float*>(bad.tensors.at("state.0.absmax2").bytes.data())[3] = -1.0f;
    EXPECT_THROW(target->load_state_dict(bad), CorruptData);
    EXPECT_EQ(target->state_dict(), before);
    EXPECT_EQ(target->step_count(), 2);
    bad = good;
    bad.tensors.at("state.0.state2").bytes.pop_back();
    EXPECT_THROW(target->load_state_dict(bad), InvalidArgument);
    bad = good;
    bad.tensors["state.0.extra"] = bad.tensors.at("state.0.absmax1");
    EXPECT_THROW(target->load_state_dict(bad), InvalidArgument);
    EXPECT_EQ(target->state_dict(), before);
    // Another optimizer's dict, and a dict saved with another min_8bit_size (f32 vs u8).
    auto adam = fresh("adam:lr=0.01");
    adam->step();
    EXPECT_THROW(target->load_state_dict(adam->state_dict()), InvalidArgument);
    EXPECT_EQ(target->state_dict(), before);
  }
  auto other = fresh("adam8bit:lr=0.01,min_8bit_size=1e9");
  EXPECT_THROW(other->load_state_dict(good), InvalidArgument);
  EXPECT_EQ(other->step_count(), 0);
}

TEST(EightBit, Adam8bitSkipsNonFiniteGradientsAsBnb) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Buffers a = random_buffers(kBig, 12), b = a;
  a.grad[5] = nan;
  a.grad[300] = std::numeric_limits<float>::infinity();
  b.grad = a.grad;
  auto q = make_optimizer("adam8bit:lr=0.01", {a.param()});
  auto f = make_optimizer("adam:lr=0.01", {b.param()});
  q->step();
  f->step();
  // bnb's 2-state kernel: the element keeps its parameter and gets zero states; the rest of its
  // block is updated as usual (32-bit adam lets the NaN into θ instead).
  EXPECT_EQ(a.value[5], random_buffers(kBig, 12).value[5]);
  EXPECT_EQ(a.value[300], random_buffers(kBig, 12).value[300]);
  EXPECT_TRUE(std::isnan(b.value[5]));
  for (int64_t i = 0; i < kBig; ++i) {
    if (i != 5 && i != 300) {
      ASSERT_EQ(a.value[i], b.value[i]) << i;
    }
  }
  const StateDict sd = q->state_dict();
  EXPECT_EQ(dequantized(sd, "0", 1, true)[5], 0.0f);
  EXPECT_EQ(dequantized(sd, "0", 2, false)[300], 0.0f);
  EXPECT_TRUE(
      std::isfinite(reinterpret_cast<const float*>(sd.tensor("state.0.absmax1").bytes.data())[0]));
}

TEST(EightBit, OneStateOptimizersLetANanPoisonItsBlock) {
  // bnb's 1-state kernel has no finite check; terse keeps the NaN visible: the parameter is NaN,
  // the block's absmax becomes NaN and the next step spreads it over that block only.
  Buffers a = random_buffers(kBig, 13);
  auto opt = make_optimizer("momentum8bit:lr=0.01,momentum=0.9", {a.param()});
  a.grad[kQuantBlockSize + 1] = std::numeric_limits<float>::quiet_NaN();
  opt->step();
  EXPECT_TRUE(std::isnan(a.value[kQuantBlockSize + 1]));
  EXPECT_TRUE(std::isfinite(a.value[kQuantBlockSize + 2]));
  const StateDict sd = opt->state_dict();
  const auto* absmax = reinterpret_cast<const float*>(sd.tensor("state.0.absmax1").bytes.data());
  EXPECT_TRUE(std::isnan(absmax[1]));
  EXPECT_TRUE(std::isfinite(absmax[0]));
  fill_grads(a.grad, 1, 3);
  opt->step();
  for (int64_t i = 0; i < kQuantBlockSize; ++i) {
    ASSERT_TRUE(std::isfinite(a.value[i])) << i;
    ASSERT_FALSE(std::isfinite(a.value[kQuantBlockSize + i])) << i;
    ASSERT_TRUE(std::isfinite(a.value[2 * kQuantBlockSize + i])) << i;
  }
}

TEST(EightBit, ResultsDoNotDependOnTheThreadCount) {
  ThreadGuard guard;
  std::vector<float> results[2];
  for (int t = 0; t < 2; ++t) {
    set_cpu_threads(t == 0 ? 1 : 4);
    Buffers big = random_buffers(8 * kBig, 21), small = random_buffers(50, 22);
    auto opt = make_optimizer("adamw8bit:lr=0.01", {big.param(), small.param()});
    for (int s = 0; s < 4; ++s) {
      fill_grads(big.grad, s, 1);
      fill_grads(small.grad, s, 1);
      opt->step();
    }
    results[t] = big.value;
    results[t].insert(results[t].end(), small.value.begin(), small.value.end());
  }
  EXPECT_EQ(results[0], results[1]);
}

TEST(EightBit, SixteenBitParametersUseF32MathAndMatchTheF32Run) {
  // bf16 / f16 parameters and gradients (bnb supports both): loaded to f32, stored rounded.
  for (const DType dt : {DType::kBF16, DType::kF16}) {
    Buffers f = random_buffers(kBig, 30);
    std::vector<uint16_t> p(f.value.size()), g(f.grad.size());
    const auto to16 = [&](float x) {
      return dt == DType::kBF16 ? to_bfloat16(x).bits : to_half(x).bits;
    };
    const auto from16 = [&](uint16_t x) {
      return dt == DType::kBF16 ? to_float(BFloat16{x}) : to_float(Half{x});
    };
    for (size_t i = 0; i < p.size(); ++i) {
      p[i] = to16(f.value[i]);
      f.value[i] = from16(p[i]);  // the same start
    }
    Param param{TensorView(p.data(), kBig, dt), TensorView(g.data(), kBig, dt), {kBig}, "w"};
    auto q16 = make_optimizer("adam8bit:lr=0.01", {param});
    auto q32 = make_optimizer("adam8bit:lr=0.01", {f.param()});
    for (int s = 0; s < 5; ++s) {
      fill_grads(f.grad, s, 4);
      for (size_t i = 0; i < g.size(); ++i) {
        g[i] = to16(f.grad[i]);
        f.grad[i] = from16(g[i]);
      }
      q16->step();
      q32->step();
    }
    // 5 steps of ~lr each: the 16-bit run differs by its storage rounding only.
    const float tol = dt == DType::kBF16 ? 0.05f : 0.01f;
    for (size_t i = 0; i < p.size(); ++i) {
      ASSERT_NEAR(from16(p[i]), f.value[i], tol * (1 + std::fabs(f.value[i]))) << i;
    }
    EXPECT_EQ(q16->state_bytes(), q32->state_bytes());
  }
}

}  // namespace
}  // namespace terse

// The optional hooks of FusedOptimizer<Def> (src/optim/fused_optimizer.h): the per-tensor scalar
// from the first gradient, the global pre-pass over all gradients, and the 4th state slot.

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "fused_optimizer.h"
#include "optim_test_util.h"
#include "terse/kernels/cpu_multi_tensor_impl.h"

namespace terse {

// p += scale * global, where scale is the tensor's scalar; the four states count steps with
// distinct increments, so a slot mix-up shows.
struct HookRule {
  static constexpr int kNumStates = 4;
  float scale = 0;
  float global = 0;
  TERSE_HD void operator()(float& p, float /*g*/, float& s0, float& s1, float& s2,
                           float& s3) const {
    p = p + scale * global;
    s0 += 1;
    s1 += 2;
    s2 += 3;
    s3 += 4;
  }
};

template void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<HookRule>>&);

namespace optim_detail {
namespace {

struct Calls {
  // tensor_scalar: (group param value, grad value) seen at each call.
  std::vector<std::pair<float, float>> tensor_scalar;
  // global_scalar: (number of groups, norm, first param value) at each call.
  std::vector<std::tuple<size_t, double, float>> global_scalar;
  int rules = 0;
};
Calls g_calls;

struct HookDef {
  static constexpr const char* kName = "hook_test";
  struct Hyper {
    double offset = 0;
  };
  using Rule = std::variant<HookRule>;
  static std::vector<OptionDef> options() {
    return {{"lr", OptionType::kDouble, "1"}, {"offset", OptionType::kDouble, "0"}};
  }
  static Hyper parse(const GroupOptions& o) { return {o.number("offset")}; }
  static std::vector<std::string> state_names(const Hyper&) { return {"a", "b", "c", "d"}; }
  static void describe(const Hyper&, OptionMap&) {}

  static constexpr const char* kTensorScalarName = "scale";
  static float tensor_scalar(const Hyper& h, const Param& p) {
    const float g = static_cast<const float*>(p.grad.data)[0];
    g_calls.tensor_scalar.emplace_back(static_cast<const float*>(p.value.data)[0], g);
    return static_cast<float>(g + h.offset);
  }
  static HookRule for_tensor(const HookRule& r, float scalar) {
    HookRule t = r;
    t.scale = scalar;
    return t;
  }

  static const float* first_param;
  static double global_scalar(const std::vector<Hyper>& hypers,
                              const std::function<double()>& global_grad_norm) {
    const double norm = global_grad_norm();
    g_calls.global_scalar.emplace_back(hypers.size(), norm, *first_param);
    return norm;
  }
  static Rule rule(const Hyper&, double, int64_t, double global) {
    ++g_calls.rules;
    HookRule r;
    r.global = static_cast<float>(global);
    return r;
  }
};
const float* HookDef::first_param = nullptr;

TEST(FusedOptimizerHooks, TensorScalarOnceFromTheFirstGradientGlobalScalarEveryStep) {
  g_calls = {};
  test::Buffers a{{10.0f, 10.0f}, {3.0f, 0.0f}}, b{{20.0f}, {4.0f}};
  HookDef::first_param = a.value.data();
  std::vector<ParamGroup> groups(2);
  groups[0].params = {a.param("a")};
  groups[1].params = {b.param("b")};
  groups[1].overrides["offset"] = "1";
  FusedOptimizer<HookDef> opt({}, std::move(groups));
  EXPECT_TRUE(g_calls.tensor_scalar.empty());
  opt.step();
  // Once per tensor, before any update, from the first gradient, with its group's options.
  ASSERT_EQ(g_calls.tensor_scalar.size(), 2u);
  EXPECT_EQ(g_calls.tensor_scalar[0], std::make_pair(10.0f, 3.0f));
  EXPECT_EQ(g_calls.tensor_scalar[1], std::make_pair(20.0f, 4.0f));
  // Once per step, before any update, with every group, norm over all groups: 5.
  ASSERT_EQ(g_calls.global_scalar.size(), 1u);
  EXPECT_EQ(g_calls.global_scalar[0], std::make_tuple(size_t{2}, 5.0, 10.0f));
  EXPECT_EQ(g_calls.rules, 2);  // rule() once per group
  EXPECT_EQ(a.value, (std::vector<float>{10.0f + 3 * 5, 10.0f + 3 * 5}));
  EXPECT_EQ(b.value[0], 20.0f + 5 * 5);
  // Step 2: new gradients change the global scalar, not the per-tensor one.
  a.grad = {0.0f, 0.0f};
  b.grad = {2.0f};
  opt.step();
  EXPECT_EQ(g_calls.tensor_scalar.size(), 2u);
  ASSERT_EQ(g_calls.global_scalar.size(), 2u);
  EXPECT_EQ(std::get<1>(g_calls.global_scalar[1]), 2.0);
  EXPECT_EQ(a.value[0], 25.0f + 3 * 2);
  EXPECT_EQ(b.value[0], 45.0f + 5 * 2);
  // State: four distinct slots per element and one scalar per tensor.
  EXPECT_EQ(opt.state_bytes(), 3 * 4 * sizeof(float) + 2 * sizeof(float));
  const StateDict sd = opt.state_dict();
  float v[2] = {};
  sd.tensor("state.0.d").copy_to(TensorView::of(v, 2), "d");
  EXPECT_EQ(v[1], 8.0f);
  sd.tensor("state.1.a").copy_to(TensorView::of(v, 1), "a");
  EXPECT_EQ(v[0], 2.0f);
  sd.tensor("state.1.scale").copy_to(TensorView::of(v, 1), "scale");
  EXPECT_EQ(v[0], 5.0f);
  // A restored optimizer keeps the saved scalar and does not call the hook again.
  std::vector<ParamGroup> again(2);
  again[0].params = {a.param("a")};
  again[1].params = {b.param("b")};
  again[1].overrides["offset"] = "1";
  FusedOptimizer<HookDef> resumed({}, std::move(again));
  resumed.load_state_dict(sd);
  EXPECT_EQ(resumed.state_dict(), sd);
  a.grad = {0.0f, 0.0f};
  b.grad = {1.0f};
  resumed.step();
  EXPECT_EQ(g_calls.tensor_scalar.size(), 2u);
  EXPECT_EQ(b.value[0], 55.0f + 5 * 1);
}

}  // namespace
}  // namespace optim_detail
}  // namespace terse

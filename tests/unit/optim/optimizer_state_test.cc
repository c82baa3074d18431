// state_dict / load_state_dict and state memory accounting.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "terse/optim/optimizer.h"

namespace terse {
namespace {

// Two tensors with a fixed gradient sequence, so runs can be replayed and compared bit-exactly.
struct Model {
  std::vector<float> w{0.5f, -1.0f, 2.0f, 0.25f, 3.0f}, b{0.1f, -0.2f};
  std::vector<float> gw = std::vector<float>(5), gb = std::vector<float>(2);
  std::vector<Param> params() {
    return {Param{TensorView::of(w.data(), 5), TensorView::of(gw.data(), 5), {5}, "w"},
            Param{TensorView::of(b.data(), 2), TensorView::of(gb.data(), 2), {2}, "b"}};
  }
  void set_grads(int step) {
    for (size_t i = 0; i < gw.size(); ++i) gw[i] = 0.1f * static_cast<float>(step) - 0.3f * i;
    for (size_t i = 0; i < gb.size(); ++i) gb[i] = 0.05f * static_cast<float>((step * 7) % 5);
  }
};

const char* const kSpecs[] = {"sgd:lr=0.1,momentum=0.9,nesterov=true", "sgd:lr=0.1",
                              "adam:lr=0.01,amsgrad=true", "adamw:lr=0.01,weight_decay=0.1"};

TEST(OptimizerState, RoundTripThenContinueEqualsUninterrupted) {
  for (const char* spec : kSpecs) {
    Model straight, resumed;
    auto a = make_optimizer(spec, straight.params());
    auto b = make_optimizer(spec, resumed.params());
    for (int s = 0; s < 3; ++s) {
      straight.set_grads(s);
      a->step();
      resumed.set_grads(s);
      b->step();
    }
    const StateDict saved = b->state_dict();
    // A fresh optimizer over a copy of the model restores and continues.
    Model copy = resumed;
    auto c = make_optimizer(spec, copy.params());
    c->load_state_dict(saved);
    EXPECT_EQ(c->state_dict(), saved) << spec;
    EXPECT_EQ(c->step_count(), 3);
    for (int s = 3; s < 6; ++s) {
      straight.set_grads(s);
      a->step();
      copy.set_grads(s);
      c->step();
    }
    EXPECT_EQ(straight.w, copy.w) << spec;
    EXPECT_EQ(straight.b, copy.b) << spec;
    EXPECT_EQ(a->state_dict(), c->state_dict()) << spec;
  }
}

TEST(OptimizerState, LayoutUsesTorchNames) {
  Model m;
  auto opt = make_optimizer("adam:amsgrad=true,lr=0.5", m.params());
  EXPECT_EQ(opt->state_dict().tensors.size(), 0u);  // nothing before the first step
  m.set_grads(1);
  opt->step();
  const StateDict sd = opt->state_dict();
  EXPECT_EQ(sd.string_value("optimizer"), "adam");
  EXPECT_EQ(sd.int_value("step_count"), 1);
  EXPECT_DOUBLE_EQ(sd.float_value("group.0.lr"), 0.5);
  EXPECT_EQ(sd.tensor("state.0.exp_avg").numel(), 5);
  EXPECT_EQ(sd.tensor("state.1.max_exp_avg_sq").numel(), 2);
  EXPECT_EQ(sd.string_value("param.1.name"), "b");
  EXPECT_EQ(sd.tensors.size(), 6u);
}

TEST(OptimizerState, MismatchedLoadThrowsAndLeavesStateUnchanged) {
  Model m;
  auto opt = make_optimizer("sgd:lr=0.1,momentum=0.9", m.params());
  m.set_grads(1);
  opt->step();
  opt->set_lr(0.05, 0);
  const StateDict before = opt->state_dict();

  auto expect_rejected = [&](const StateDict& bad, const char* why) {
    EXPECT_ANY_THROW(opt->load_state_dict(bad)) << why;
    EXPECT_EQ(opt->state_dict(), before) << why << ": state changed";
    EXPECT_DOUBLE_EQ(opt->lr(), 0.05) << why;
  };
  StateDict wrong_size = before;
  wrong_size.tensors["state.1.momentum_buffer"].bytes.resize(3 * sizeof(float));
  expect_rejected(wrong_size, "wrong size");
  StateDict missing = before;
  missing.tensors.erase("state.1.momentum_buffer");
  missing.floats["group.0.lr"] = 0.7;  // would change lr if applied before the error
  missing.ints["step_count"] = 9;
  expect_rejected(missing, "missing tensor");
  EXPECT_THROW(opt->load_state_dict(missing), CorruptData);
  StateDict wrong_dtype = before;
  wrong_dtype.tensors["state.0.momentum_buffer"].dtype = DType::kI32;
  expect_rejected(wrong_dtype, "wrong dtype");
  StateDict other_optimizer = before;
  other_optimizer.strings["optimizer"] = "adam";
  expect_rejected(other_optimizer, "other optimizer");
  StateDict extra = before;
  extra.tensors["state.0.exp_avg"] = before.tensor("state.0.momentum_buffer");
  expect_rejected(extra, "extra tensor");
  StateDict renamed = before;
  renamed.strings["param.0.name"] = "conv1.weight";
  expect_rejected(renamed, "renamed parameter");
  StateDict groups = before;
  groups.ints["num_groups"] = 2;
  expect_rejected(groups, "group count");
  StateDict bad_lr = before;
  bad_lr.floats["group.0.lr"] = -1;
  expect_rejected(bad_lr, "negative lr");

  // Loading into a model of another size.
  std::vector<float> w(4), g(4);
  auto small =
      make_optimizer("sgd:lr=0.1,momentum=0.9",
                     {Param{TensorView::of(w.data(), 4), TensorView::of(g.data(), 4), {}, ""}});
  EXPECT_THROW(small->load_state_dict(before), InvalidArgument);
  EXPECT_EQ(small->state_bytes(), 0u);
}

TEST(OptimizerState, StateBytesCountsAllocatedBuffers) {
  struct Case {
    const char* spec;
    size_t per_element;
  } cases[] = {
      {"sgd", 0}, {"sgd:momentum=0.9", 4}, {"adam", 8}, {"adamw", 8}, {"adam:amsgrad=true", 12}};
  for (const auto& c : cases) {
    Model m;
    auto opt = make_optimizer(c.spec, m.params());
    EXPECT_EQ(opt->state_bytes(), 0u) << c.spec << ": allocated before the first step";
    m.set_grads(0);
    opt->step();
    EXPECT_EQ(opt->state_bytes(), 7 * c.per_element) << c.spec;
  }
}

}  // namespace
}  // namespace terse

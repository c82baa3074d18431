// auon: Maity 2025, as ryyzn9/AuON auon/optimizer.py `AuON.step` (spec optimizers.md §14), for
// parameters of any shape:
//   p *= 1 - lr * weight_decay                       (only when weight_decay != 0)
//   m = lerp(m, g, 1 - momentum);  G = lerp(g, m, momentum)      (Nesterov, always)
//   if ||G||_F == 0: no further change
//   r = sqrt(mean(cosh(gamma * G / (||G||_F + 1e-7))^2))
//   p -= lr * G / (r + 1e-8)                          (G itself, not normalised: the code's form)
// paper=true takes the paper's scale-invariant form instead (no gamma):
//   X = G / (||G||_F + 1e-7);  p -= lr * X / (sqrt(mean(cosh(X)^2)) + 1e-8)
// Three passes over memory (norm, cosh reduction, update); G is recomputed from g and m in each
// instead of being stored. cosh is terse's auon_cosh (terse/kernels/auon_rule.h), correctly
// rounded and the same on the host and a GPU, not libm's coshf (which is 1 ulp off for ~0.8% of
// inputs on glibc 2.36). CUDA parameters step on their GPU with the CPU's bits (cuda_step).

#include <algorithm>
#include <cmath>
#include <vector>

#include "cuda/matrix_kernels.h"
#include "matrix_optimizer_base.h"
#include "option_values.h"
#include "terse/core/check.h"
#include "terse/core/dispatch.h"
#include "terse/kernels/auon_rule.h"
#include "terse/kernels/cuda_multi_tensor.h"
#include "terse/kernels/lerp_momentum_rule.h"
#include "torch_lerp.h"

namespace terse::optim_detail {
namespace {

struct AuonHyper {
  double momentum = 0.95, weight_decay = 0, gamma = 1.5;
  bool paper = false;
};

std::vector<OptionDef> auon_options() {
  return {{"lr", OptionType::kDouble, "0.24"},
          {"momentum", OptionType::kDouble, "0.95"},
          {"weight_decay", OptionType::kDouble, "0"},
          {"gamma", OptionType::kDouble, "1.5"},
          {"paper", OptionType::kBool, "false"}};
}

AuonHyper parse_auon(const GroupOptions& o) {
  AuonHyper h;
  const std::string& who = o.who();
  h.weight_decay = o.weight_decay();
  h.momentum = o.number("momentum");
  // The official check: 0 <= momentum <= 1.
  TERSE_CHECK(h.momentum >= 0 && h.momentum <= 1, InvalidArgument, who,
              ": momentum must be in [0, 1], got ", h.momentum, "; 0.95 is usual");
  h.gamma = o.number("gamma");
  TERSE_CHECK(std::isfinite(h.gamma) && h.gamma > 0, InvalidArgument, who,
              ": gamma must be a finite number > 0, got ", h.gamma, "; 1.5 is the default");
  h.paper = o.flag("paper");
  return h;
}

class Auon final : public MatrixOptimizerBase {
 public:
  Auon(const OptionMap& options, std::vector<ParamGroup> groups)
      : MatrixOptimizerBase("auon", auon_options(), {}) {
    add_groups(options, std::move(groups), [this](const GroupOptions& o, const WordOptions&) {
      hypers_.push_back(parse_auon(o));
    });
  }

 private:
  Layout state_layout(size_t g, size_t i, int64_t) const override {
    return {{"momentum_buffer", static_cast<size_t>(groups_[g].params[i].value.numel)}};
  }

  void describe(size_t g, OptionMap& out) const override {
    const AuonHyper& h = hypers_[g];
    out["momentum"] = format_double(h.momentum);
    out["weight_decay"] = format_double(h.weight_decay);
    out["gamma"] = format_double(h.gamma);
    out["paper"] = h.paper ? "true" : "false";
  }

  void run_step(int64_t t) override {
    for (size_t g = 0; g < groups_.size(); ++g) {
      Group& grp = groups_[g];
      for (size_t i = 0; i < grp.params.size(); ++i) {
        auto& st = grp.states[i];
        if (st.empty())
          st.push_back(make_buffer("momentum_buffer", state_layout(g, i, t)[0].second));
      }
    }
    if (device().is_cuda()) {
      cuda_step();
      return;
    }
    for (size_t g = 0; g < groups_.size(); ++g) {
      Group& grp = groups_[g];
      for (size_t i = 0; i < grp.params.size(); ++i) {
        const Param& p = grp.params[i];
        dispatch_floating(p.value.dtype, [&](auto tag) {
          using T = decltype(tag);
          step_tensor(hypers_[g], grp.lr, static_cast<T*>(p.value.data),
                      static_cast<const T*>(p.grad.data), grp.states[i][0].data.data(),
                      p.value.numel);
        });
      }
    }
  }

  // The update's scalars from ||G|| (as float) and `cosh_sum(inv, gamma)`, the sum over the
  // tensor of double(c)^2, c = auon_cosh(G * inv * gamma), which only runs when ||G|| != 0.
  template <typename CoshSum>
  static AuonUpdateRule update_rule(const AuonHyper& h, double lr, float norm, int64_t n,
                                    const CoshSum& cosh_sum) {
    AuonUpdateRule u;
    u.momentum = static_cast<float>(h.momentum);
    u.decay = h.weight_decay != 0 ? static_cast<float>(1.0 - lr * h.weight_decay) : 1.0f;
    u.coef = 0;  // p += coef * G
    if (norm != 0) {
      const float inv = 1.0f / (norm + 1e-7f);
      const float gamma = h.paper ? 1.0f : static_cast<float>(h.gamma);
      const auto r = static_cast<float>(std::sqrt(cosh_sum(inv, gamma) / static_cast<double>(n)));
      // Official: lr * G / (r + eps); paper: lr * (G / (||G|| + 1e-7)) / (r + eps).
      u.coef = static_cast<float>(-lr / (static_cast<double>(r) + 1e-8));
      if (h.paper) u.coef *= inv;
    }
    return u;
  }

  template <typename T>
  static void step_tensor(const AuonHyper& h, double lr, T* p, const T* grad, float* m, int64_t n) {
    if (n == 0) return;
    const auto momentum = LerpMomentumRule::make(h.momentum, true);
    float no_param = 0, unused = 0;
    double sum_sq = 0;
    for (int64_t k = 0; k < n; ++k) {
      float G = 0;
      momentum(no_param, load_as_float(grad, k), m[k], G, unused);
      sum_sq += static_cast<double>(G) * G;
    }
    const AuonUpdateRule update =
        update_rule(h, lr, static_cast<float>(std::sqrt(sum_sq)), n, [&](float inv, float gamma) {
          double sum_cosh = 0;
          for (int64_t k = 0; k < n; ++k) {
            const float G = torch_lerp(load_as_float(grad, k), m[k], momentum.momentum);
            const float c = auon_cosh(G * inv * gamma);
            sum_cosh += static_cast<double>(c) * c;
          }
          return sum_cosh;
        });
    for (int64_t k = 0; k < n; ++k) {
      float pv = load_as_float(p, k);
      update(pv, load_as_float(grad, k), m[k], unused, unused);
      store_from_float(p, k, pv);
    }
  }

  // The step on CUDA tensors: per tensor, the momentum launch writes G to the work buffer, and
  // the two reductions run on it in the CPU's order (cuda_sequential_sum_squares: the same
  // bits; each waits for its result); then one launch updates every tensor. The same Rules and
  // auon_cosh as the CPU loop, so the results are the CPU's bit for bit.
  void cuda_step() {
    const int dev = device().index;
    size_t largest = 0;
    for (const auto& grp : groups_) {
      for (const auto& p : grp.params)
        largest = std::max(largest, static_cast<size_t>(p.value.numel));
    }
    if (cuda_work_.size() < largest) cuda_work_ = StateBuffer(device(), largest);
    float* work = cuda_work_.data();
    std::vector<CudaTensorTask<AuonUpdateRule>> updates;
    for (size_t g = 0; g < groups_.size(); ++g) {
      Group& grp = groups_[g];
      const AuonHyper& h = hypers_[g];
      for (size_t i = 0; i < grp.params.size(); ++i) {
        const Param& p = grp.params[i];
        const int64_t n = p.value.numel;
        if (n == 0) continue;
        float* m = grp.states[i][0].data.data();
        CudaTensorTask<LerpMomentumRule> mom;
        mom.rule = LerpMomentumRule::make(h.momentum, true);
        mom.param = p.value;
        mom.grad = p.grad;
        mom.states[0] = m;
        mom.states[1] = work;
        cuda_multi_tensor_apply(std::vector<CudaTensorTask<LerpMomentumRule>>{mom});
        const auto norm = static_cast<float>(std::sqrt(cuda_sequential_sum_squares(dev, work, n)));
        CudaTensorTask<AuonUpdateRule> upd;
        upd.rule = update_rule(h, grp.lr, norm, n, [&](float inv, float gamma) {
          cuda_auon_cosh(dev, work, n, inv, gamma);  // G -> cosh(G * inv * gamma), in place
          return cuda_sequential_sum_squares(dev, work, n);
        });
        upd.param = p.value;
        upd.grad = p.grad;
        upd.states[0] = m;
        updates.push_back(upd);
      }
    }
    if (!updates.empty()) cuda_multi_tensor_apply(updates);
  }

  std::vector<AuonHyper> hypers_;
  StateBuffer cuda_work_;  // G, then cosh(G * inv * gamma), of one tensor on the GPU
};

}  // namespace

std::unique_ptr<Optimizer> make_auon(const OptionMap& options, std::vector<ParamGroup> groups) {
  return std::make_unique<Auon>(options, std::move(groups));
}

}  // namespace terse::optim_detail

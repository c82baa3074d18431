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
// instead of being stored.

#include <cmath>

#include "matrix_optimizer_base.h"
#include "option_values.h"
#include "terse/core/check.h"
#include "terse/core/dispatch.h"
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
          st.push_back(
              Buffer{"momentum_buffer", std::vector<float>(state_layout(g, i, t)[0].second)});
        const Param& p = grp.params[i];
        dispatch_floating(p.value.dtype, [&](auto tag) {
          using T = decltype(tag);
          step_tensor(hypers_[g], grp.lr, static_cast<T*>(p.value.data),
                      static_cast<const T*>(p.grad.data), st[0].data.data(), p.value.numel);
        });
      }
    }
  }

  template <typename T>
  static void step_tensor(const AuonHyper& h, double lr, T* p, const T* grad, float* m, int64_t n) {
    if (n == 0) return;
    const auto w = static_cast<float>(1.0 - h.momentum);
    const auto beta = static_cast<float>(h.momentum);
    double sum_sq = 0;
    for (int64_t k = 0; k < n; ++k) {
      const float g = load_as_float(grad, k);
      m[k] = torch_lerp(m[k], g, w);
      const float G = torch_lerp(g, m[k], beta);
      sum_sq += static_cast<double>(G) * G;
    }
    const auto norm = static_cast<float>(std::sqrt(sum_sq));
    const float decay = h.weight_decay != 0 ? static_cast<float>(1.0 - lr * h.weight_decay) : 1.0f;
    float coef = 0;  // p += coef * G
    if (norm != 0) {
      const float inv = 1.0f / (norm + 1e-7f);
      const float gamma = h.paper ? 1.0f : static_cast<float>(h.gamma);
      double sum_cosh = 0;
      for (int64_t k = 0; k < n; ++k) {
        const float G = torch_lerp(load_as_float(grad, k), m[k], beta);
        const float c = std::cosh(G * inv * gamma);
        sum_cosh += static_cast<double>(c) * c;
      }
      const auto r = static_cast<float>(std::sqrt(sum_cosh / static_cast<double>(n)));
      // Official: lr * G / (r + eps); paper: lr * (G / (||G|| + 1e-7)) / (r + eps).
      coef = static_cast<float>(-lr / (static_cast<double>(r) + 1e-8));
      if (h.paper) coef *= inv;
    }
    for (int64_t k = 0; k < n; ++k) {
      const float G = torch_lerp(load_as_float(grad, k), m[k], beta);
      store_from_float(p, k, load_as_float(p, k) * decay + coef * G);
    }
  }

  std::vector<AuonHyper> hypers_;
};

}  // namespace

std::unique_ptr<Optimizer> make_auon(const OptionMap& options, std::vector<ParamGroup> groups) {
  return std::make_unique<Auon>(options, std::move(groups));
}

}  // namespace terse::optim_detail

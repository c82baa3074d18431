// muon: Jordan 2024, as KellerJordan/Muon muon.py `SingleDeviceMuonWithAuxAdam` (spec
// optimizers.md §14). Matrix parameters (ndim >= 2, in groups with use_muon=true):
//   m = lerp(m, g, 1 - momentum);  U = nesterov ? lerp(g, m, momentum) : m
//   U viewed as (shape[0], -1) when 4-D; other ndim >= 3 is a batch of (shape[-2], shape[-1])
//   U = NewtonSchulz(U) (terse/optim/newton_schulz.h) * sqrt(max(1, shape[-2] / shape[-1]))
//   p = p * (1 - lr * weight_decay) - lr * U
// Other parameters (biases, gains; or every parameter of a use_muon=false group) take the
// reference's internal Adam with its own options:
//   m = lerp(m, g, 1 - b1);  v = lerp(v, g^2, 1 - b2)
//   p = p * (1 - adam_lr * adam_weight_decay) - adam_lr * (m / bc1) / (sqrt(v / bc2) + adam_eps)
// adam_lr follows the group's schedule (it is scaled by lr / base_lr).

#include <algorithm>
#include <cmath>
#include <tuple>

#include "matrix_optimizer_base.h"
#include "option_values.h"
#include "terse/core/check.h"
#include "terse/core/dispatch.h"
#include "terse/optim/newton_schulz.h"
#include "torch_lerp.h"

namespace terse::optim_detail {
namespace {

struct MuonHyper {
  double momentum = 0.95, weight_decay = 0;
  bool nesterov = true, use_muon = true;
  NewtonSchulzOptions ns;
  double adam_lr = 3e-4, adam_beta1 = 0.9, adam_beta2 = 0.95, adam_eps = 1e-10, adam_wd = 0;
};

std::vector<OptionDef> muon_options() {
  return {{"lr", OptionType::kDouble, "0.02"},
          {"momentum", OptionType::kDouble, "0.95"},
          {"weight_decay", OptionType::kDouble, "0"},
          {"nesterov", OptionType::kBool, "true"},
          {"ns_steps", OptionType::kDouble, "5"},
          {"ns_bf16", OptionType::kBool, "true"},
          {"use_muon", OptionType::kBool, "true"},
          {"adam_lr", OptionType::kDouble, "0.0003"},
          {"adam_betas", OptionType::kPair, "0.9/0.95"},
          {"adam_eps", OptionType::kDouble, "1e-10"},
          {"adam_weight_decay", OptionType::kDouble, "0"}};
}

MuonHyper parse_muon(const GroupOptions& o) {
  MuonHyper h;
  const std::string& who = o.who();
  h.weight_decay = o.weight_decay();
  h.momentum = o.number("momentum");
  TERSE_CHECK(h.momentum >= 0 && h.momentum < 1, InvalidArgument, who,
              ": momentum must be in [0, 1), got ", h.momentum, "; 0.95 is usual");
  h.nesterov = o.flag("nesterov");
  const double steps = o.number("ns_steps");
  TERSE_CHECK(steps >= 0 && steps <= 100 && std::floor(steps) == steps, InvalidArgument, who,
              ": ns_steps must be a whole number in [0, 100], got ", steps, "; 5 is usual");
  h.ns.steps = static_cast<int>(steps);
  h.ns.bf16 = o.flag("ns_bf16");
  h.use_muon = o.flag("use_muon");
  h.adam_lr = o.number("adam_lr");
  TERSE_CHECK(std::isfinite(h.adam_lr) && h.adam_lr >= 0, InvalidArgument, who,
              ": adam_lr must be a finite number >= 0, got ", h.adam_lr, "; 3e-4 is the default");
  std::tie(h.adam_beta1, h.adam_beta2) = o.pair("adam_betas");
  TERSE_CHECK(h.adam_beta1 >= 0 && h.adam_beta1 < 1 && h.adam_beta2 >= 0 && h.adam_beta2 < 1,
              InvalidArgument, who, ": adam_betas must each be in [0, 1), got ", h.adam_beta1, "/",
              h.adam_beta2, "; 0.9/0.95 is the default");
  h.adam_eps = o.positive("adam_eps", "1e-10 is the default");
  h.adam_wd = o.number("adam_weight_decay");
  TERSE_CHECK(std::isfinite(h.adam_wd) && h.adam_wd >= 0, InvalidArgument, who,
              ": adam_weight_decay must be a finite number >= 0, got ", h.adam_wd);
  return h;
}

class Muon final : public MatrixOptimizerBase {
 public:
  Muon(const OptionMap& options, std::vector<ParamGroup> groups)
      : MatrixOptimizerBase("muon", muon_options(), {}) {
    add_groups(options, std::move(groups), [this](const GroupOptions& o, const WordOptions&) {
      hypers_.push_back(parse_muon(o));
    });
  }

 private:
  bool is_matrix(size_t g, size_t i) const {
    return hypers_[g].use_muon && ndim(groups_[g].params[i]) >= 2;
  }

  Layout state_layout(size_t g, size_t i, int64_t) const override {
    const auto n = static_cast<size_t>(groups_[g].params[i].value.numel);
    if (is_matrix(g, i)) return {{"momentum_buffer", n}};
    return {{"exp_avg", n}, {"exp_avg_sq", n}};
  }

  void describe(size_t g, OptionMap& out) const override {
    const MuonHyper& h = hypers_[g];
    out["momentum"] = format_double(h.momentum);
    out["weight_decay"] = format_double(h.weight_decay);
    out["nesterov"] = h.nesterov ? "true" : "false";
    out["ns_steps"] = std::to_string(h.ns.steps);
    out["ns_bf16"] = h.ns.bf16 ? "true" : "false";
    out["use_muon"] = h.use_muon ? "true" : "false";
    out["adam_lr"] = format_double(h.adam_lr);
    out["adam_betas"] = format_double(h.adam_beta1) + "/" + format_double(h.adam_beta2);
    out["adam_eps"] = format_double(h.adam_eps);
    out["adam_weight_decay"] = format_double(h.adam_wd);
  }

  void run_step(int64_t t) override {
    for (size_t g = 0; g < groups_.size(); ++g) {
      Group& grp = groups_[g];
      for (size_t i = 0; i < grp.params.size(); ++i) {
        auto& st = grp.states[i];
        if (st.empty()) {
          for (const auto& [n, size] : state_layout(g, i, t)) {
            st.push_back(Buffer{n, std::vector<float>(size)});
          }
        }
        if (grp.params[i].value.numel == 0) continue;
        if (is_matrix(g, i)) {
          matrix_step(hypers_[g], grp.lr, grp.params[i], st[0].data.data());
        } else {
          adam_step(hypers_[g], hypers_[g].adam_lr * lr_factor(g), t, grp.params[i],
                    st[0].data.data(), st[1].data.data());
        }
      }
    }
  }

  void matrix_step(const MuonHyper& h, double lr, const Param& p, float* m) {
    const int64_t n = p.value.numel;
    update_.resize(static_cast<size_t>(n));
    float* u = update_.data();
    const auto w = static_cast<float>(1.0 - h.momentum);
    const auto beta = static_cast<float>(h.momentum);
    dispatch_floating(p.value.dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* gp = static_cast<const T*>(p.grad.data);
      // The reference writes U into p.grad (grad.lerp_); terse leaves the gradient as it is.
      for (int64_t k = 0; k < n; ++k) {
        const float gk = load_as_float(gp, k);
        m[k] = torch_lerp(m[k], gk, w);
        u[k] = h.nesterov ? torch_lerp(gk, m[k], beta) : m[k];
      }
    });
    const auto& s = p.shape;
    const size_t nd = s.size();
    int64_t batch = 1, rows = s[0], cols = n / s[0];
    if (nd != 4) {
      rows = s[nd - 2];
      cols = s[nd - 1];
      batch = n / (rows * cols);
    }
    ns_.run(u, batch, rows, cols, h.ns);
    // As the reference: the grad's last two dims, also for 4-D (kh / kw there, not the view's).
    const double scale =
        std::sqrt(std::max(1.0, static_cast<double>(s[nd - 2]) / static_cast<double>(s[nd - 1])));
    if (scale != 1.0) {
      const auto sc = static_cast<float>(scale);
      for (int64_t k = 0; k < n; ++k) {
        const float v = u[k] * sc;
        u[k] = h.ns.bf16 ? to_float(to_bfloat16(v)) : v;
      }
    }
    const auto decay = static_cast<float>(1.0 - lr * h.weight_decay);
    const auto neg_lr = static_cast<float>(-lr);
    dispatch_floating(p.value.dtype, [&](auto tag) {
      using T = decltype(tag);
      T* pp = static_cast<T*>(p.value.data);
      for (int64_t k = 0; k < n; ++k) {
        store_from_float(pp, k, load_as_float(pp, k) * decay + neg_lr * u[k]);
      }
    });
  }

  static void adam_step(const MuonHyper& h, double lr, int64_t t, const Param& p, float* m,
                        float* v) {
    const auto w1 = static_cast<float>(1.0 - h.adam_beta1);
    const auto w2 = static_cast<float>(1.0 - h.adam_beta2);
    const auto bc1 = static_cast<float>(1.0 - std::pow(h.adam_beta1, static_cast<double>(t)));
    const auto bc2 = static_cast<float>(1.0 - std::pow(h.adam_beta2, static_cast<double>(t)));
    const auto eps = static_cast<float>(h.adam_eps);
    const auto decay = static_cast<float>(1.0 - lr * h.adam_wd);
    const auto neg_lr = static_cast<float>(-lr);
    dispatch_floating(p.value.dtype, [&](auto tag) {
      using T = decltype(tag);
      T* pp = static_cast<T*>(p.value.data);
      const T* gp = static_cast<const T*>(p.grad.data);
      for (int64_t k = 0; k < p.value.numel; ++k) {
        const float g = load_as_float(gp, k);
        m[k] = torch_lerp(m[k], g, w1);
        v[k] = torch_lerp(v[k], g * g, w2);
        const float upd = (m[k] / bc1) / (std::sqrt(v[k] / bc2) + eps);
        store_from_float(pp, k, load_as_float(pp, k) * decay + neg_lr * upd);
      }
    });
  }

  std::vector<MuonHyper> hypers_;
  std::vector<float> update_;  // work buffer for U, reused
  NewtonSchulz ns_;
};

}  // namespace

std::unique_ptr<Optimizer> make_muon(const OptionMap& options, std::vector<ParamGroup> groups) {
  return std::make_unique<Muon>(options, std::move(groups));
}

}  // namespace terse::optim_detail

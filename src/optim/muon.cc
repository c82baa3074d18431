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
// CUDA parameters step on their GPU (cuda_step): the same Rules (lerp_momentum_rule.h,
// muon_update_rule.h, muon_adam_rule.h) through the multi-tensor executor, the iteration through
// CudaNewtonSchulz (cuBLAS); the state stays in GPU memory.

#include <algorithm>
#include <cmath>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

#include "matrix_optimizer_base.h"
#include "option_values.h"
#include "terse/core/check.h"
#include "terse/core/dispatch.h"
#include "terse/kernels/cuda_multi_tensor.h"
#include "terse/kernels/lerp_momentum_rule.h"
#include "terse/kernels/muon_adam_rule.h"
#include "terse/kernels/muon_update_rule.h"
#include "terse/optim/cuda_newton_schulz.h"
#include "terse/optim/newton_schulz.h"

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
          for (const auto& [n, size] : state_layout(g, i, t)) st.push_back(make_buffer(n, size));
        }
      }
    }
    if (device().is_cuda()) {
      cuda_step(t);
      return;
    }
    for (size_t g = 0; g < groups_.size(); ++g) {
      Group& grp = groups_[g];
      for (size_t i = 0; i < grp.params.size(); ++i) {
        auto& st = grp.states[i];
        if (grp.params[i].value.numel == 0) continue;
        if (is_matrix(g, i)) {
          matrix_step(hypers_[g], grp.lr, grp.params[i], st[0].data.data());
        } else {
          adam_step(adam_rule(g, t), grp.params[i], st[0].data.data(), st[1].data.data());
        }
      }
    }
  }

  MuonAdamRule adam_rule(size_t g, int64_t t) const {
    const MuonHyper& h = hypers_[g];
    return MuonAdamRule::for_step(h.adam_lr * lr_factor(g), h.adam_beta1, h.adam_beta2, h.adam_eps,
                                  h.adam_wd, t);
  }

  // How Newton-Schulz sees a matrix parameter (ndim >= 2), and its update's scale.
  struct MatrixShape {
    int64_t batch, rows, cols;
    double scale;
  };
  static MatrixShape matrix_shape(const Param& p) {
    const auto& s = p.shape;
    const size_t nd = s.size();
    const int64_t n = p.value.numel;
    MatrixShape ms{1, s[0], n / s[0], 1.0};
    if (nd != 4) {
      ms.rows = s[nd - 2];
      ms.cols = s[nd - 1];
      ms.batch = n / (ms.rows * ms.cols);
    }
    // As the reference: the grad's last two dims, also for 4-D (kh / kw there, not the view's).
    ms.scale =
        std::sqrt(std::max(1.0, static_cast<double>(s[nd - 2]) / static_cast<double>(s[nd - 1])));
    return ms;
  }

  // The reference writes U into p.grad (grad.lerp_); terse leaves the gradient as it is and
  // writes U to a work buffer.
  void matrix_step(const MuonHyper& h, double lr, const Param& p, float* m) {
    const int64_t n = p.value.numel;
    update_.resize(static_cast<size_t>(n));
    float* u = update_.data();
    const auto momentum = LerpMomentumRule::make(h.momentum, h.nesterov);
    float unused = 0;
    dispatch_floating(p.value.dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* gp = static_cast<const T*>(p.grad.data);
      float no_param = 0;
      for (int64_t k = 0; k < n; ++k) momentum(no_param, load_as_float(gp, k), m[k], u[k], unused);
    });
    const MatrixShape ms = matrix_shape(p);
    ns_.run(u, ms.batch, ms.rows, ms.cols, h.ns);
    const auto update = MuonUpdateRule::make(lr, h.weight_decay, ms.scale, h.ns.bf16);
    dispatch_floating(p.value.dtype, [&](auto tag) {
      using T = decltype(tag);
      T* pp = static_cast<T*>(p.value.data);
      for (int64_t k = 0; k < n; ++k) {
        float pv = load_as_float(pp, k);
        update(pv, 0.0f, u[k], unused, unused);
        store_from_float(pp, k, pv);
      }
    });
  }

  static void adam_step(const MuonAdamRule& rule, const Param& p, float* m, float* v) {
    float unused = 0;
    dispatch_floating(p.value.dtype, [&](auto tag) {
      using T = decltype(tag);
      T* pp = static_cast<T*>(p.value.data);
      const T* gp = static_cast<const T*>(p.grad.data);
      for (int64_t k = 0; k < p.value.numel; ++k) {
        float pv = load_as_float(pp, k);
        rule(pv, load_as_float(gp, k), m[k], v[k], unused);
        store_from_float(pp, k, pv);
      }
    });
  }

  // The step on CUDA tensors, on the legacy default stream (nothing waits): the aux Adam of
  // every non-matrix parameter in one multi-tensor launch; then the matrices in packs that fit
  // the work buffer: one launch for the pack's momentum (U into the work buffer), Newton-Schulz
  // per matrix (cuBLAS), one launch for the pack's parameter updates. Each element-wise part is
  // the CPU's Rule; only the products differ from the CPU (cuda_newton_schulz.h).
  void cuda_step(int64_t t) {
    const int dev = device().index;
    std::vector<CudaTensorTask<MuonAdamRule>> adam;
    size_t largest = 0, total = 0;
    for (size_t g = 0; g < groups_.size(); ++g) {
      Group& grp = groups_[g];
      for (size_t i = 0; i < grp.params.size(); ++i) {
        const Param& p = grp.params[i];
        if (p.value.numel == 0) continue;
        if (is_matrix(g, i)) {
          largest = std::max(largest, padded(p.value.numel));
          total += padded(p.value.numel);
          continue;
        }
        CudaTensorTask<MuonAdamRule> task;
        task.rule = adam_rule(g, t);
        task.param = p.value;
        task.grad = p.grad;
        task.states[0] = grp.states[i][0].data.data();
        task.states[1] = grp.states[i][1].data.data();
        adam.push_back(task);
      }
    }
    if (!adam.empty()) cuda_multi_tensor_apply(adam);
    if (total == 0) return;
    // A pack holds up to kPackFloats floats of U (or one matrix, if larger).
    const size_t capacity = std::min(total, std::max(largest, kPackFloats));
    if (cuda_work_.size() < capacity) cuda_work_ = StateBuffer(device(), capacity);
    if (!cuda_ns_) cuda_ns_ = std::make_unique<CudaNewtonSchulz>(dev);
    std::vector<CudaTensorTask<LerpMomentumRule>> momenta;
    std::vector<CudaTensorTask<MuonUpdateRule>> updates;
    std::vector<std::pair<const Param*, const NewtonSchulzOptions*>> pack;
    size_t used = 0;
    const auto flush = [&] {
      if (pack.empty()) return;
      cuda_multi_tensor_apply(momenta);
      for (size_t k = 0; k < pack.size(); ++k) {
        const MatrixShape ms = matrix_shape(*pack[k].first);
        cuda_ns_->run(updates[k].states[0], ms.batch, ms.rows, ms.cols, *pack[k].second);
      }
      cuda_multi_tensor_apply(updates);
      momenta.clear();
      updates.clear();
      pack.clear();
      used = 0;
    };
    for (size_t g = 0; g < groups_.size(); ++g) {
      Group& grp = groups_[g];
      const MuonHyper& h = hypers_[g];
      for (size_t i = 0; i < grp.params.size(); ++i) {
        const Param& p = grp.params[i];
        if (p.value.numel == 0 || !is_matrix(g, i)) continue;
        if (used + padded(p.value.numel) > capacity) flush();
        float* u = cuda_work_.data() + used;
        used += padded(p.value.numel);
        CudaTensorTask<LerpMomentumRule> mom;
        mom.rule = LerpMomentumRule::make(h.momentum, h.nesterov);
        mom.param = p.value;
        mom.grad = p.grad;
        mom.states[0] = grp.states[i][0].data.data();
        mom.states[1] = u;
        momenta.push_back(mom);
        CudaTensorTask<MuonUpdateRule> upd;
        upd.rule = MuonUpdateRule::make(grp.lr, h.weight_decay, matrix_shape(p).scale, h.ns.bf16);
        upd.param = p.value;
        upd.grad = p.grad;
        upd.states[0] = u;
        updates.push_back(upd);
        pack.emplace_back(&p, &h.ns);
      }
    }
    flush();
  }

  // Floats a matrix takes in the work buffer: rounded up to 64 (256 bytes), so every U is
  // aligned for the executor's vector loads and cuBLAS.
  static size_t padded(int64_t numel) { return (static_cast<size_t>(numel) + 63) / 64 * 64; }
  static constexpr size_t kPackFloats = size_t{1} << 24;  // 64 MiB of U per pack

  std::vector<MuonHyper> hypers_;
  std::vector<float> update_;  // work buffer for U, reused
  NewtonSchulz ns_;
  StateBuffer cuda_work_;                      // U of a pack of matrices, on the GPU
  std::unique_ptr<CudaNewtonSchulz> cuda_ns_;  // made at the first CUDA step
};

}  // namespace

std::unique_ptr<Optimizer> make_muon(const OptionMap& options, std::vector<ParamGroup> groups) {
  return std::make_unique<Muon>(options, std::move(groups));
}

}  // namespace terse::optim_detail

// sgd_sai: Xu et al. 2024 as in AnonymousAlethiometer/SGD_SaI `SGD_sai` v1.0.3
// (Rule: terse/kernels/sgd_sai_rule.h).

#include <variant>
#include <vector>

#include "fused_optimizer.h"
#include "option_values.h"
#include "terse/core/check.h"
#include "terse/core/dtype.h"
#include "terse/kernels/cpu_multi_tensor_impl.h"
#include "terse/kernels/cuda_gsnr.h"
#include "terse/kernels/gsnr.h"
#include "terse/kernels/sgd_sai_rule.h"

namespace terse {

template void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<SgdSaiRule<false>>>&);
template void cpu_multi_tensor_apply(const std::vector<CpuTensorTask<SgdSaiRule<true>>>&);

namespace optim_detail {
namespace {

struct SgdSaiDef {
  static constexpr const char* kName = "sgd_sai";
  struct Hyper {
    double momentum = 0.9, eps = 1e-8, weight_decay = 1e-2;
  };
  using Rule = std::variant<SgdSaiRule<false>, SgdSaiRule<true>>;

  static std::vector<OptionDef> options() {
    return {{"lr", OptionType::kDouble, "0.01"},
            {"momentum", OptionType::kDouble, "0.9"},
            {"eps", OptionType::kDouble, "1e-08"},
            {"weight_decay", OptionType::kDouble, "0.01"}};
  }

  static Hyper parse(const GroupOptions& o) {
    o.lr();
    Hyper h;
    h.weight_decay = o.weight_decay();
    h.momentum = o.number("momentum");
    const std::string& who = o.who();
    TERSE_CHECK(h.momentum >= 0 && h.momentum < 1, InvalidArgument, who,
                ": momentum must be in [0, 1), got ", h.momentum, "; 0.9 is the default");
    // Official: eps >= 0. terse wants eps > 0: a 1-element or constant gradient has std 0, and
    // gsnr = ||g|| / (0 + 0) would be inf or NaN for the rest of training.
    h.eps = o.positive("eps",
                       "1e-8 is the default (it keeps ||g|| / (std + eps) finite when std is 0)");
    return h;
  }

  static std::vector<std::string> state_names(const Hyper& h) {
    if (h.momentum == 0) return {};
    return {"momentum_buffer"};
  }

  static void describe(const Hyper& h, OptionMap& out) {
    out["momentum"] = format_double(h.momentum);
    out["eps"] = format_double(h.eps);
    out["weight_decay"] = format_double(h.weight_decay);
  }

  static Rule rule(const Hyper& h, double lr, int64_t step) {
    if (h.momentum == 0) return SgdSaiRule<false>::for_step(lr, h.momentum, h.weight_decay, step);
    return SgdSaiRule<true>::for_step(lr, h.momentum, h.weight_decay, step);
  }

  // The g-SNR, once per tensor from its first gradient (the official warmup_step): sums in
  // double in element order (terse/kernels/gsnr.h), on the host or on the GPU with the same bits.
  static constexpr const char* kTensorScalarName = "gsnr";
  static float tensor_scalar(const Hyper& h, const Param& p) {
    const TensorView& g = p.grad;
    GsnrSums s;
    switch (g.dtype) {
      case DType::kBF16:
        s = gsnr_sums(static_cast<const BFloat16*>(g.data), g.numel);
        break;
      case DType::kF16:
        s = gsnr_sums(static_cast<const Half*>(g.data), g.numel);
        break;
      default:  // f32: add_groups admits nothing else
        s = gsnr_sums(static_cast<const float*>(g.data), g.numel);
        break;
    }
    return gsnr_from_sums(s, g.numel, h.eps);
  }
  static std::vector<float> cuda_tensor_scalars(const Hyper& h, const std::vector<Param>& params) {
    std::vector<TensorView> grads;
    for (const Param& p : params) grads.push_back(p.grad);
    const std::vector<GsnrSums> sums = cuda_gsnr_sums(grads);
    std::vector<float> out;
    for (size_t i = 0; i < params.size(); ++i) {
      out.push_back(gsnr_from_sums(sums[i], params[i].grad.numel, h.eps));
    }
    return out;
  }
  template <bool kMomentum>
  static SgdSaiRule<kMomentum> for_tensor(const SgdSaiRule<kMomentum>& r, float gsnr) {
    return r.for_tensor(gsnr);
  }
};

}  // namespace

std::unique_ptr<Optimizer> make_sgd_sai(const OptionMap& options, std::vector<ParamGroup> groups) {
  return std::make_unique<FusedOptimizer<SgdSaiDef>>(options, std::move(groups));
}

}  // namespace optim_detail
}  // namespace terse

#include "terse/torch/grad_hooks.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "terse/core/check.h"
#include "terse/torch/view_of.h"

namespace terse::torch_adapter {

GradHooks::GradHooks(std::vector<at::Tensor> params, DataParallel& dp)
    : params_(std::move(params)) {
  TERSE_CHECK(params_.size() == dp.params().size(), InvalidArgument, "GradHooks got ",
              params_.size(), " tensors for an engine of ", dp.params().size(),
              " parameters; pass the same parameter list to both");
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& p = params_[i];
    const TensorView value = view_of(p);
    const Param& slot = dp.params()[i];
    TERSE_CHECK(value.data == slot.value.data && value.numel == slot.value.numel, InvalidArgument,
                "tensor ", i, " does not match parameter ", i, " ('", slot.name,
                "') of the engine; build both from the same list in the same order");
    TERSE_CHECK(p.requires_grad(), InvalidArgument, "parameter ", i, " ('", slot.name,
                "') does not require grad, so its hook would never fire; train it or leave it "
                "out of the engine");
    slots_.push_back(at::from_blob(slot.grad.data, p.sizes(), p.options().requires_grad(false)));
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor slot = slots_[i];
    DataParallel* engine = &dp;
    handles_.push_back(params_[i].register_hook([slot, engine, i](const at::Tensor& grad) {
      at::NoGradGuard no_grad;
      slot.copy_(grad);
      engine->mark_ready(i);
    }));
  }
}

GradHooks::~GradHooks() {
  for (size_t i = 0; i < handles_.size(); ++i) params_[i].remove_hook(handles_[i]);
}

void GradHooks::clear_torch_grads() {
  for (auto& p : params_) {
    if (p.grad().defined()) p.mutable_grad().reset();
  }
}

}  // namespace terse::torch_adapter

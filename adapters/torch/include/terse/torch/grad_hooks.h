#pragma once

#include <memory>
#include <vector>

#include <ATen/Tensor.h>

#include "terse/train/data_parallel.h"

namespace terse::torch_adapter {

// Feeds a DataParallel from autograd: one Tensor::register_hook per parameter copies the
// gradient into the parameter's slot of its bucket and calls mark_ready, so a bucket's
// all-reduce starts while backward is still computing earlier layers. (libtorch 1.13 has no
// post-accumulate-grad hook; the hook sees the full gradient of a leaf, after the
// contributions of all its uses are summed, and fires once per backward.)
// `params[i]` must be the tensor behind `dp.params()[i]`. Hooks are removed on destruction.
// Autograd still stores the gradient in params[i].grad(); reset it each step (the trainer
// does) so it does not accumulate.
class GradHooks {
 public:
  GradHooks(std::vector<at::Tensor> params, DataParallel& dp);
  ~GradHooks();
  GradHooks(const GradHooks&) = delete;
  GradHooks& operator=(const GradHooks&) = delete;

  // Sets every parameter's .grad() to undefined (torch's zero_grad(set_to_none=true)).
  void clear_torch_grads();

 private:
  std::vector<at::Tensor> params_;
  std::vector<unsigned> handles_;
  std::vector<at::Tensor> slots_;  // params_[i]'s bucket slot as a tensor of its shape
};

}  // namespace terse::torch_adapter

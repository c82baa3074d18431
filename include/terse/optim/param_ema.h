#pragma once

// Exponential moving average of parameters: the "momentum teacher" of MoCo / ALBEF, timm's
// model EMA. Follows huggingface/pytorch-image-models `timm.utils.ModelEmaV3` with the step
// passed to update() (spec optimizers.md §16). Update t (1-based), per element:
//   e = lerp(e, x, 1 - d_t)   (= d_t e + (1 - d_t) x, torch's lerp)
//   s = t - update_after_step - 1
//   d_t = 0                                                     if s <= 0 (the EMA copies x)
//       = decay                                                 without warm-up
//       = clamp(1 - (1 + s / warmup_gamma)^-warmup_power, min_decay, decay)   with warm-up
// The EMA is f32 for f32, bf16 and f16 parameters (timm keeps the parameter's dtype; for f32
// the values are the same), allocated at the first update where the parameters are: in host
// memory for CPU tensors, in their GPU's memory for CUDA ones, where every pass (update, load,
// restore) runs on the GPU's legacy default stream, after the optimizer's step, with the host's
// formula (terse/kernels/ema_rule.h) and so the host's bits. Parameters only: terse's models
// have no buffers (timm also averages BatchNorm statistics; torch's AveragedModel does not).

#include <cstdint>
#include <string>
#include <vector>

#include "terse/core/device.h"
#include "terse/core/state_dict.h"
#include "terse/optim/optimizer.h"
#include "terse/optim/param.h"

namespace terse {

namespace optim_detail {
// The arrays of the EMA, in host or GPU memory (src/optim/state_array.h, state_buffer.h);
// complete in param_ema.cc, which defines every member that touches them.
template <typename T>
class StateArray;
class StateBuffer;
}  // namespace optim_detail

class ParamEma {
 public:
  // Options (timm's names and defaults): decay (0.9999, in [0, 1)), warmup (false),
  // warmup_gamma (1, > 0), warmup_power (2/3, > 0), min_decay (0, in [0, decay]),
  // update_after_step (0, integer >= 0). Throws InvalidArgument for unknown options, values
  // out of range, and parameters that are not f32/bf16/f16 tensors of one device (the CPU or
  // one GPU).
  ParamEma(std::vector<Param> params, const OptionMap& options);
  ~ParamEma();
  ParamEma(ParamEma&&) noexcept;
  ParamEma& operator=(ParamEma&&) noexcept;
  // From "decay=0.999,warmup=true" (the --ema flag of terse train).
  static ParamEma from_spec(const std::string& spec, std::vector<Param> params);

  // One update from the parameters' current values: one pass over memory (on the GPU for CUDA
  // parameters; returns without waiting for it).
  void update();
  // d_t of update t (1-based), as in the header comment.
  double decay_at(int64_t t) const;
  int64_t num_updates() const { return num_updates_; }

  // Evaluation with the EMA weights: copies the EMA into the parameters (rounded to their
  // dtype) keeping their values aside, until restore_params() puts them back. Throws
  // InvalidArgument before the first update or when already loaded / not loaded.
  void load_into_params();
  void restore_params();

  // A host copy of the EMA of parameter i, f32 (empty before the first update); for CUDA
  // parameters, copied back after the work enqueued so far.
  std::vector<float> average(size_t i) const;
  // Where the parameters and the EMA are.
  Device device() const { return device_; }
  // Every option after defaults, normalised, for logs.
  OptionMap options() const;

  // strings "ema" = "param_ema", "param.K.name"; ints "num_updates"; tensors "ema.K" (host
  // copies, whatever the device: a dict saved on one device loads on any other).
  StateDict state_dict() const;
  // Validates sizes and names against these parameters; throws leaving *this unchanged.
  void load_state_dict(const StateDict& state);
  // The f32 EMA copy, plus the saved parameters while load_into_params() is in effect.
  size_t state_bytes() const;

 private:
  std::vector<Param> params_;
  Device device_ = Device::cpu();
  double decay_ = 0.9999, warmup_gamma_ = 1.0, warmup_power_ = 2.0 / 3.0, min_decay_ = 0;
  bool warmup_ = false;
  int64_t update_after_step_ = 0;
  int64_t num_updates_ = 0;
  std::vector<optim_detail::StateBuffer> ema_;            // empty until the first update
  std::vector<optim_detail::StateArray<uint8_t>> saved_;  // the parameters' bytes while loaded
};

}  // namespace terse

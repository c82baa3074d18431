#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "terse/comm/communicator.h"
#include "terse/core/device.h"
#include "terse/core/state_dict.h"
#include "terse/optim/param.h"
#include "terse/train/comm_stats.h"

namespace terse {

// How gradients travel (docs/training.md, "Compressed training"). `compress` is one of
//   "none"                         dense fp32 all-reduce (DataParallel's own overlapped path)
//   a Compressor spec              "topk:density=0.01", "qsgd:levels=127", "onebit", ... with
//                                  `feedback` none | ef14 | ef21 | ef21w around it
//   "dgc:key=value,..."            Deep Gradient Compression (its own memory; feedback must be
//                                  "none"): density, values, sample, warmup, warmup_steps,
//                                  clip, masking, dense_below
//   "powersgd:key=value,..."       PowerSGD (its own error feedback): rank, start, min_rate,
//                                  ef, warm_start
struct CompressionOptions {
  std::string compress = "none";
  std::string feedback = "none";
  uint64_t seed = 0;  // folded with the step and tensor into every randomised choice
  // DGC only: the optimizer's momentum, moved into DGC's momentum correction (the optimizer
  // then runs without momentum, as the reference's DGCSGD does for the gradient).
  double momentum = 0.0;
  bool nesterov = false;
};

// True when `compress` names DGC, so the caller moves the optimizer's momentum into
// CompressionOptions (see above).
bool compression_is_dgc(const std::string& compress);
// True for "none" (and "" ): the dense path.
bool compression_is_dense(const std::string& compress);
// True when the method runs on CUDA gradients where they are (DGC with exchange=gather: its
// memory and selection on the GPU; PowerSGD: its products, orthogonalization and error on the
// GPU, only P and Q to the host); the others run on host gradients, which DataParallel
// mirrors (DataParallel::exchange_params()). InvalidArgument for a malformed DGC spec.
bool gradient_compression_on_gpu(const CompressionOptions& options);

// A compressed gradient exchange for a fixed list of parameters. Collective: every rank builds
// it with the same options and parameter shapes, and calls exchange() once per step.
// Tensors with one dimension (biases, norms) and tensors smaller than the method's threshold
// are sent densely in one fused fp32 all-reduce; the rest are compressed one tensor each, their
// payloads concatenated into one all-gather, so a step costs three collectives whatever the
// number of tensors (PowerSGD: two all-reduces).
class GradientCompression {
 public:
  virtual ~GradientCompression() = default;
  GradientCompression(const GradientCompression&) = delete;
  GradientCompression& operator=(const GradientCompression&) = delete;

  // The full spec with defaults spelled out and the tensors' split, e.g.
  // "dgc:density=0.001,... + none; 4 compressed tensors (421120 elements), 4 dense (234)".
  virtual std::string describe() const = 0;
  // Averages (or, for EF21, estimates) every rank's gradient into params[i].grad, in place.
  // params must be the list given at construction (same order, same sizes).
  virtual CommStats exchange(const std::vector<Param>& params) = 0;
  // Exchanges done so far (restored by load_state_dict).
  virtual int64_t step() const = 0;
  // Where it expects the gradients: the CPU, or the GPU of the CUDA gradients it was built over
  // (gradient_compression_on_gpu).
  virtual Device device() const { return Device::cpu(); }
  // Bytes of compression state (residuals, DGC's U and V, PowerSGD's error and Q) on this rank.
  virtual size_t state_bytes() const = 0;
  // Per-rank state for checkpoints; load_state_dict validates the method and every size first
  // and throws CorruptData naming the key on a mismatch, leaving the state unchanged.
  virtual StateDict state_dict() const = 0;
  virtual void load_state_dict(const StateDict& state) = 0;

 protected:
  GradientCompression() = default;
};

// Builds the exchange, or returns nullptr for the dense path. Throws InvalidArgument for an
// unknown method or option (naming it, the value seen and the valid ones), a feedback with DGC
// or PowerSGD, a gradient that is not f32, or CUDA gradients for a method that runs on host
// ones (gradient_compression_on_gpu). Collective: checks that every rank passed the
// same spec and shapes (InvalidArgument on every rank naming the first difference).
std::unique_ptr<GradientCompression> make_gradient_compression(Communicator& comm,
                                                               const std::vector<Param>& params,
                                                               const CompressionOptions& options);

}  // namespace terse

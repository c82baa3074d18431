#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "terse/compress/compressor.h"
#include "terse/core/state_dict.h"
#include "terse/core/tensor_view.h"

namespace terse {

// Which error-feedback method wraps the compressor (docs/compressors.md, "Error feedback").
enum class ErrorFeedbackKind { kNone, kEF14, kEF21, kEF21W };

// One received payload: bytes [data, data + len) as produced by some rank's encode().
struct PayloadView {
  const uint8_t* data = nullptr;
  size_t len = 0;
};

struct ErrorFeedbackOptions {
  int world_size = 1;  // n: how many workers' payloads decode_and_aggregate receives
  int rank = 0;        // this worker's index in [0, world_size)
  // EF21-W only: smoothness constants L_i of every worker's f_i (size world_size, each > 0);
  // the weights are w_i = L_i / sum_j L_j. Empty means equal weights (EF21-W == EF21).
  std::vector<double> smoothness;
};

// Error feedback over any pure Compressor. Owns, per bucket id, the worker's Residual (EF14: the
// error e_i; EF21/EF21-W: the worker's estimate g_i) and, for EF21/EF21-W, the aggregate
// estimate g = sum_i w_i g_i that every rank keeps (Top-k supports differ per worker, so the
// exchange is an allgather and each rank aggregates all payloads itself). All state is f32.
class ErrorFeedback {
 public:
  ErrorFeedback(ErrorFeedbackKind kind, std::shared_ptr<const Compressor> compressor,
                ErrorFeedbackOptions options = {});

  ErrorFeedbackKind kind() const { return kind_; }
  // "none", "ef14", "ef21" or "ef21w": the name make_error_feedback accepts.
  std::string name() const;
  const Compressor& compressor() const { return *compressor_; }
  int world_size() const { return options_.world_size; }
  int rank() const { return options_.rank; }
  // w_i per worker (1/n for every kind but EF21-W with smoothness given).
  const std::vector<double>& weights() const { return weights_; }

  // Bound on encode()'s output for a bucket of numel elements.
  size_t max_encoded_bytes(int64_t numel) const { return compressor_->max_encoded_bytes(numel); }

  // Worker side: compresses this worker's gradient of `bucket` (f32, CPU) into out and updates
  // the bucket's Residual. The first call for a bucket creates zero state of grad.numel; later
  // calls must pass the same numel (InvalidArgument otherwise). Returns the bytes written.
  size_t encode(int bucket, TensorView grad, uint64_t seed_step, uint8_t* out, size_t cap);

  // Receiver side: payloads[i] is worker i's payload (size world_size, rank order). Writes the
  // update direction into out (f32, CPU): kNone/kEF14 the mean of the decoded payloads;
  // kEF21/kEF21W the kept estimate after g += sum_i w_i * decode(payload_i).
  void decode_and_aggregate(int bucket, const std::vector<PayloadView>& payloads, TensorView out);

  // Bytes of f32 state held for all buckets (residuals plus aggregates).
  size_t state_bytes() const;
  // Drops all per-bucket state (e.g. after a rebucketing).
  void reset();

  // Keys: "ef.kind", "ef.world_size", "ef.rank", "ef.residual.<bucket>", "ef.aggregate.<bucket>".
  StateDict state_dict() const;
  // Validates kind, world size, rank, dtypes and sizes (against each other and against buckets
  // already present here) before replacing any state; throws CorruptData on a mismatch.
  void load_state_dict(const StateDict& state);

 private:
  std::vector<float>& residual_for(int bucket, int64_t numel);

  ErrorFeedbackKind kind_;
  std::shared_ptr<const Compressor> compressor_;
  ErrorFeedbackOptions options_;
  std::vector<double> weights_;
  std::map<int, std::vector<float>> residuals_;   // Residual: e_i (EF14) or g_i (EF21, EF21-W)
  std::map<int, std::vector<float>> aggregates_;  // g (EF21, EF21-W)
  std::vector<float> scratch_;
  std::vector<float> sum_;
};

// Builds a policy from "none", "ef14", "ef21" or "ef21w" (InvalidArgument lists the valid names).
std::unique_ptr<ErrorFeedback> make_error_feedback(const std::string& name,
                                                   std::shared_ptr<const Compressor> compressor,
                                                   ErrorFeedbackOptions options = {});

// The theory step size of EF21 / EF21-W (spec §3.2, §3.3): gamma = 1 / (L + Lt * sqrt(beta/theta))
// with theta = 1 - sqrt(1 - alpha), beta = (1 - alpha) / theta, and Lt the quadratic mean
// sqrt(mean L_i^2) for kEF21 or the arithmetic mean of L_i for kEF21W. alpha is the compressor's
// contraction (Top-k: k/d) in (0, 1]; l (smoothness of f) and every L_i are finite and > 0.
// InvalidArgument for other kinds or values. Practical steps are often many times larger.
double ef21_step_size(ErrorFeedbackKind kind, double alpha, double l,
                      const std::vector<double>& smoothness);

// The names make_error_feedback accepts.
std::vector<std::string> error_feedback_names();

}  // namespace terse

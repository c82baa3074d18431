#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "terse/comm/communicator.h"
#include "terse/torch/train_config.h"

namespace terse::torch_adapter {

// What a workload's evaluation reports, identical on every rank.
struct Evaluation {
  double loss = 0;      // mean cross-entropy (nats) per test image / per validation byte
  double accuracy = 0;  // in [0, 1]: test accuracy / next-byte accuracy
};

// One training task of `terse train`: its data, its model, its loss and its evaluation. The
// training loop, the gradient exchange, checkpoints and metrics are shared (trainer.cc); a
// workload only says what an example is. Examples are numbered 0..num_examples()-1 and sharded
// and shuffled by the trainer's ShardedSampler.
class Workload {
 public:
  virtual ~Workload() = default;

  // Builds the model from torch's global generator; the trainer seeds it and serialises calls.
  virtual void build_model() = 0;
  virtual torch::nn::Module& model() = 0;
  // Moves the model (after build_model) and the data to `device` (TrainConfig::device), so
  // training and evaluation run there.
  virtual void to(const c10::Device& device) = 0;

  virtual int64_t num_examples() const = 0;
  // "images", "windows": for messages.
  virtual const char* example_noun() const = 0;
  // Mean loss of the examples indices[0..count) (a scalar to call backward() on).
  virtual at::Tensor loss(const int64_t* indices, int64_t count) = 0;
  // Collective: each rank evaluates a disjoint block of the held-out data and the sums are
  // all-reduced, so every rank returns the same numbers.
  virtual Evaluation evaluate(Communicator& comm) = 0;

  // Extra values a checkpoint must match to continue this run (besides model, world size,
  // optimizer, exchange, batch size and steps per epoch).
  virtual std::vector<std::pair<std::string, int64_t>> identity() const { return {}; }
  // True for byte-level language modelling: metrics gain val_loss, perplexity, bits_per_byte.
  virtual bool is_language_model() const { return false; }
};

// The workload of config.model: "mlp" | "cnn" (Fashion-MNIST, image_classification_workload.h)
// or "lm" (byte-level language model, language_model_workload.h). Loads the data; the model is
// built later by build_model(). Throws InvalidArgument for an unknown model.
std::unique_ptr<Workload> make_workload(const TrainConfig& config);

}  // namespace terse::torch_adapter

#pragma once

#include "terse/comm/communicator.h"
#include "terse/torch/train_config.h"

namespace terse::torch_adapter {

// Data-parallel training of a workload (workload.h: Fashion-MNIST "mlp" / "cnn", byte-level
// language model "lm") over `comm`: broadcast of the initial parameters, bucketed averaged
// all-reduce of gradients, a terse optimizer stepping the torch parameters, evaluation each
// epoch, atomic checkpoints, metrics. Throws terse errors
// (InvalidArgument, CorruptData, NumericalError, Timeout, CommError) with actionable messages.
// With config.device "cuda" the model, the buckets and the optimizer are on this rank's GPU
// (TrainConfig::device); `comm` still carries the control messages and compressed exchanges.
TrainSummary train(const TrainConfig& config, Communicator& comm, TrainObserver* observer);

// Throws InvalidArgument unless config.device can be used in this process: for "cuda", terse
// built with CUDA and libtorch seeing a GPU. train() checks it too; the CLI calls it before
// starting ranks.
void check_device(const TrainConfig& config);

}  // namespace terse::torch_adapter

#pragma once

#include "terse/comm/communicator.h"
#include "terse/torch/train_config.h"

namespace terse::torch_adapter {

// Data-parallel training of a workload (workload.h: Fashion-MNIST "mlp" / "cnn", byte-level
// language model "lm") over `comm`: broadcast of the initial parameters, bucketed averaged
// all-reduce of gradients, a terse optimizer stepping the torch parameters, evaluation each
// epoch, atomic checkpoints, metrics. Throws terse errors
// (InvalidArgument, CorruptData, NumericalError, Timeout, CommError) with actionable messages.
TrainSummary train(const TrainConfig& config, Communicator& comm, TrainObserver* observer);

}  // namespace terse::torch_adapter

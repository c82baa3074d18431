#pragma once

#include <string>
#include <vector>

#include <torch/nn/modules/container/sequential.h>

namespace terse::torch_adapter {

// Models for `terse train`, as torch::nn::Sequential taking [N, 1, 28, 28] f32 images and
// returning [N, 10] logits. No dropout and no batch-norm: with identical parameters every rank
// computes the same function, and a resumed run continues exactly.
//   "mlp": 784-256-128-10 with ReLU.
//   "cnn": conv 3x3 1->32, ReLU, max-pool 2; conv 3x3 32->64, ReLU, max-pool 2;
//          linear 3136->128, ReLU; linear 128->10.
// Parameters are initialised by torch's default initialisers from torch's global generator:
// seed it (torch::manual_seed) first for reproducible weights. Throws InvalidArgument for an
// unknown name, listing the known ones.
torch::nn::Sequential make_model(const std::string& name);
std::vector<std::string> model_names();

}  // namespace terse::torch_adapter

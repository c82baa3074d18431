#include "terse/torch/model_zoo.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>

#include "terse/core/check.h"

namespace terse::torch_adapter {

std::vector<std::string> model_names() { return {"mlp", "wide-mlp", "cnn"}; }

torch::nn::Sequential make_model(const std::string& name) {
  namespace nn = torch::nn;
  if (name == "mlp") {
    return nn::Sequential(nn::Flatten(), nn::Linear(784, 256), nn::ReLU(), nn::Linear(256, 128),
                          nn::ReLU(), nn::Linear(128, 10));
  }
  if (name == "wide-mlp") {
    // 5.8 M parameters for ~12 MFLOP per image: communication-bound on a 1 Gbit/s link, like
    // the fully-connected layers that dominate AlexNet's and VGG's gradients (DGC's setting).
    return nn::Sequential(nn::Flatten(), nn::Linear(784, 2048), nn::ReLU(), nn::Linear(2048, 2048),
                          nn::ReLU(), nn::Linear(2048, 10));
  }
  if (name == "cnn") {
    return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 32, 3).padding(1)), nn::ReLU(),
                          nn::MaxPool2d(nn::MaxPool2dOptions(2)),
                          nn::Conv2d(nn::Conv2dOptions(32, 64, 3).padding(1)), nn::ReLU(),
                          nn::MaxPool2d(nn::MaxPool2dOptions(2)), nn::Flatten(),
                          nn::Linear(64 * 7 * 7, 128), nn::ReLU(), nn::Linear(128, 10));
  }
  TERSE_THROW(InvalidArgument, "unknown model '", name, "'; known models: mlp, wide-mlp, cnn");
}

}  // namespace terse::torch_adapter

#pragma once

#include <torch/nn/modules/container/sequential.h>

#include "terse/torch/workload.h"

namespace terse::torch_adapter {

// Fashion-MNIST classification with a model-zoo model ("mlp" or "cnn", model_zoo.h): images
// normalised with the training set's mean and standard deviation, cross-entropy over 10
// classes, evaluation on the test set (or its first config.test_limit images).
class ImageClassificationWorkload : public Workload {
 public:
  // Loads config.data_dir; config.train_limit / test_limit take the first N images (0: all).
  explicit ImageClassificationWorkload(const TrainConfig& config);

  void build_model() override;
  void to(const c10::Device& device) override;
  torch::nn::Module& model() override { return *model_; }
  int64_t num_examples() const override { return train_x_.size(0); }
  const char* example_noun() const override { return "images"; }
  at::Tensor loss(const int64_t* indices, int64_t count) override;
  Evaluation evaluate(Communicator& comm) override;

 private:
  std::string model_name_;
  at::Tensor train_x_, train_y_, test_x_, test_y_;
  torch::nn::Sequential model_{nullptr};
};

}  // namespace terse::torch_adapter

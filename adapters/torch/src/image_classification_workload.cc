#include "terse/torch/image_classification_workload.h"

#include <torch/nn/functional/loss.h>

#include <algorithm>
#include <utility>

#include "terse/core/check.h"
#include "terse/data/fashion_mnist.h"
#include "terse/torch/model_zoo.h"

namespace terse::torch_adapter {
namespace {

constexpr double kPixelMean = 0.2860;  // Fashion-MNIST training-set statistics
constexpr double kPixelStd = 0.3530;
constexpr int64_t kEvalBatch = 1000;

// Normalised images [n, 1, 28, 28] f32 and labels [n] i64 of the first `limit` examples.
std::pair<at::Tensor, at::Tensor> to_tensors(const FashionMnistSplit& split, int64_t limit,
                                             const char* what) {
  int64_t n = split.count;
  if (limit > 0) {
    TERSE_CHECK(limit <= split.count, InvalidArgument, what, " limit ", limit, " exceeds the ",
                split.count, " images available; pass at most ", split.count, " (or 0 for all)");
    n = limit;
  }
  const at::Tensor raw = at::from_blob(const_cast<uint8_t*>(split.images.data()),
                                       {n, 1, split.rows, split.cols}, at::kByte);
  at::Tensor x = raw.to(at::kFloat).div_(255.0).sub_(kPixelMean).div_(kPixelStd);
  at::Tensor y =
      at::from_blob(const_cast<uint8_t*>(split.labels.data()), {n}, at::kByte).to(at::kLong);
  return {x, y};
}

}  // namespace

ImageClassificationWorkload::ImageClassificationWorkload(const TrainConfig& config)
    : model_name_(config.model) {
  const FashionMnist data = FashionMnist::load(config.data_dir);
  std::tie(train_x_, train_y_) = to_tensors(data.train(), config.train_limit, "training");
  std::tie(test_x_, test_y_) = to_tensors(data.test(), config.test_limit, "test");
}

void ImageClassificationWorkload::build_model() { model_ = make_model(model_name_); }

void ImageClassificationWorkload::to(const c10::Device& device) {
  model_->to(device);
  train_x_ = train_x_.to(device);
  train_y_ = train_y_.to(device);
  test_x_ = test_x_.to(device);
  test_y_ = test_y_.to(device);
}

at::Tensor ImageClassificationWorkload::loss(const int64_t* indices, int64_t count) {
  const at::Tensor idx =
      at::from_blob(const_cast<int64_t*>(indices), {count}, at::kLong).to(train_x_.device());
  return torch::nn::functional::cross_entropy(model_->forward(train_x_.index_select(0, idx)),
                                              train_y_.index_select(0, idx));
}

Evaluation ImageClassificationWorkload::evaluate(Communicator& comm) {
  at::NoGradGuard no_grad;
  const int64_t n = test_x_.size(0);
  const int64_t begin = n * comm.rank() / comm.size();
  const int64_t end = n * (comm.rank() + 1) / comm.size();
  double sums[3] = {0, 0, static_cast<double>(end - begin)};  // loss, correct, count
  namespace F = torch::nn::functional;
  for (int64_t b = begin; b < end; b += kEvalBatch) {
    const int64_t e = std::min(end, b + kEvalBatch);
    const at::Tensor logits = model_->forward(test_x_.slice(0, b, e));
    const at::Tensor target = test_y_.slice(0, b, e);
    sums[0] += F::cross_entropy(logits, target, F::CrossEntropyFuncOptions().reduction(torch::kSum))
                   .item<double>();
    sums[1] += logits.argmax(1).eq(target).sum().item<double>();
  }
  comm.all_reduce(TensorView::of(sums, 3), ReduceOp::kSum);
  TERSE_CHECK(sums[2] > 0, InvalidArgument,
              "the test set is empty; pass a test limit of at least the number of ranks");
  return Evaluation{sums[0] / sums[2], sums[1] / sums[2]};
}

}  // namespace terse::torch_adapter

#include "terse/torch/language_model_workload.h"

#include <torch/nn/functional/loss.h>

#include <algorithm>

#include "terse/core/check.h"

namespace terse::torch_adapter {
namespace {

constexpr int64_t kEvalBatch = 256;  // windows per forward pass in evaluation

// The first `limit` (0: all) non-overlapping windows of `width` bytes of `bytes`, as i64 rows.
at::Tensor windows_of(const std::vector<uint8_t>& bytes, int64_t width, int64_t limit,
                      const char* what, const std::string& source) {
  const auto available = static_cast<int64_t>(bytes.size()) / width;
  int64_t n = available;
  if (limit > 0) {
    TERSE_CHECK(limit <= available, InvalidArgument, what, " limit ", limit, " exceeds the ",
                available, " windows of ", width, " bytes in ", source, "; pass at most ",
                available, " (or 0 for all)");
    n = limit;
  }
  return at::from_blob(const_cast<uint8_t*>(bytes.data()), {n, width}, at::kByte).to(at::kLong);
}

}  // namespace

LanguageModelWorkload::LanguageModelWorkload(const TrainConfig& config) : context_(config.context) {
  TERSE_CHECK(config.context >= 1 && config.context <= TrainConfig::kMaxContext, InvalidArgument,
              "context must be in [1, ", TrainConfig::kMaxContext, "] bytes, got ", config.context);
  const TextCorpus corpus = TextCorpus::load(config.text_path, context_ + 1);
  text_bytes_ = corpus.size();
  train_windows_ =
      windows_of(corpus.train(), context_ + 1, config.train_limit, "training", config.text_path);
  validation_windows_ = windows_of(corpus.validation(), context_ + 1, config.test_limit,
                                   "validation", config.text_path);
}

void LanguageModelWorkload::build_model() {
  ByteTransformerOptions options;
  options.d_model = kDModel;
  options.heads = kHeads;
  options.layers = kLayers;
  options.context = context_;
  model_ = ByteTransformer(options);
}

void LanguageModelWorkload::to(const c10::Device& device) {
  model_->to(device);
  train_windows_ = train_windows_.to(device);
  validation_windows_ = validation_windows_.to(device);
}

at::Tensor LanguageModelWorkload::loss(const int64_t* indices, int64_t count) {
  const at::Tensor idx =
      at::from_blob(const_cast<int64_t*>(indices), {count}, at::kLong).to(train_windows_.device());
  const at::Tensor rows = train_windows_.index_select(0, idx);
  const at::Tensor logits = model_->forward(rows.slice(1, 0, context_));
  return torch::nn::functional::cross_entropy(logits.reshape({-1, ByteTransformerOptions::kVocab}),
                                              rows.slice(1, 1).reshape({-1}));
}

Evaluation LanguageModelWorkload::evaluate(Communicator& comm) {
  at::NoGradGuard no_grad;
  const int64_t n = validation_windows_.size(0);
  const int64_t begin = n * comm.rank() / comm.size();
  const int64_t end = n * (comm.rank() + 1) / comm.size();
  // loss sum, correct next bytes, predicted bytes
  double sums[3] = {0, 0, static_cast<double>((end - begin) * context_)};
  namespace F = torch::nn::functional;
  for (int64_t b = begin; b < end; b += kEvalBatch) {
    const at::Tensor rows = validation_windows_.slice(0, b, std::min(end, b + kEvalBatch));
    const at::Tensor logits =
        model_->forward(rows.slice(1, 0, context_)).reshape({-1, ByteTransformerOptions::kVocab});
    const at::Tensor target = rows.slice(1, 1).reshape({-1});
    sums[0] += F::cross_entropy(logits, target, F::CrossEntropyFuncOptions().reduction(torch::kSum))
                   .item<double>();
    sums[1] += logits.argmax(1).eq(target).sum().item<double>();
  }
  comm.all_reduce(TensorView::of(sums, 3), ReduceOp::kSum);
  TERSE_CHECK(sums[2] > 0, InvalidArgument,
              "the validation set is empty; pass a test limit of at least the number of ranks");
  return Evaluation{sums[0] / sums[2], sums[1] / sums[2]};
}

std::vector<std::pair<std::string, int64_t>> LanguageModelWorkload::identity() const {
  return {{"context", context_}, {"text_bytes", text_bytes_}};
}

}  // namespace terse::torch_adapter

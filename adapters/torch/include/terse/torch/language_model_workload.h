#pragma once

#include "terse/data/text_corpus.h"
#include "terse/torch/byte_transformer.h"
#include "terse/torch/workload.h"

namespace terse::torch_adapter {

// Byte-level language modelling ("lm") on a TextCorpus (config.text_path, default the Jargon
// File) with a ByteTransformer (byte_transformer.h). An example is a non-overlapping window of
// context + 1 bytes of the training split (window i = bytes [i (C+1), (i+1) (C+1))): the model
// reads its first C bytes and predicts each next byte; the loss is the mean cross-entropy per
// predicted byte. An epoch is one pass over all windows, sharded and shuffled by the trainer.
// Evaluation: mean cross-entropy per byte (nats) over every non-overlapping validation window
// (or the first config.test_limit), and next-byte accuracy; perplexity = exp(loss) and bits per
// byte = loss / ln 2 follow from it. config.train_limit takes the first N training windows.
class LanguageModelWorkload : public Workload {
 public:
  // The model's fixed sizes, chosen so that 4 ranks on 2 shared cores train a few epochs of the
  // Jargon File in minutes (docs/training.md, "Language model"): 84 544 parameters at context 64.
  static constexpr int64_t kDModel = 48, kHeads = 4, kLayers = 2;

  explicit LanguageModelWorkload(const TrainConfig& config);

  void build_model() override;
  void to(const c10::Device& device) override;
  torch::nn::Module& model() override { return *model_; }
  int64_t num_examples() const override { return train_windows_.size(0); }
  const char* example_noun() const override { return "windows"; }
  at::Tensor loss(const int64_t* indices, int64_t count) override;
  Evaluation evaluate(Communicator& comm) override;
  std::vector<std::pair<std::string, int64_t>> identity() const override;
  bool is_language_model() const override { return true; }

  int64_t context() const { return context_; }
  int64_t validation_windows() const { return validation_windows_.size(0); }

 private:
  int64_t context_;
  int64_t text_bytes_;
  at::Tensor train_windows_, validation_windows_;  // [n, context + 1] i64
  ByteTransformer model_{nullptr};
};

}  // namespace terse::torch_adapter

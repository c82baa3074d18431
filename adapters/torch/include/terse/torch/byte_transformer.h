#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

namespace terse::torch_adapter {

// The "lm" model of `terse train`: a small decoder-only byte-level Transformer (GPT-2 layout,
// Radford et al. 2019, "Language Models are Unsupervised Multitask Learners"):
//   h_0 = E[x_t] + P[t]                                      byte embedding 256 -> d, positions
//   h   = h + W_o concat_h softmax(Q_h K_h^T / sqrt(d/H) + M) V_h   causal self-attention on
//                                                            LayerNorm(h) (pre-LN), M = -inf
//                                                            above the diagonal
//   h   = h + W_2 GELU(W_1 LayerNorm(h))                     MLP, hidden 4d
//   logits = W_head LayerNorm(h)                             256 next-byte logits per position
// Attention is written with matmuls and an explicit mask (Debian's libtorch 1.13 has no
// scaled_dot_product_attention). No dropout: every rank computes the same function and a
// resumed run continues exactly. Embeddings start N(0, 0.02) as in GPT-2, linear layers with
// torch's defaults, all from torch's global generator (seed it first).
struct ByteTransformerOptions {
  int64_t d_model = 128;
  int64_t heads = 4;  // must divide d_model
  int64_t layers = 2;
  int64_t context = 64;  // longest input; the learned position table has this many rows
  static constexpr int64_t kVocab = 256;
};

class ByteTransformerImpl : public torch::nn::Module {
 public:
  // Throws InvalidArgument for non-positive sizes or heads not dividing d_model.
  explicit ByteTransformerImpl(const ByteTransformerOptions& options = {});
  // bytes: [B, T] i64 in 0..255 with 1 <= T <= context; returns [B, T, 256] logits, position t
  // predicting byte t + 1.
  at::Tensor forward(const at::Tensor& bytes);
  const ByteTransformerOptions& options() const { return options_; }

 private:
  struct Block;
  ByteTransformerOptions options_;
  at::Tensor token_embedding_, position_embedding_, causal_mask_;
  std::vector<std::shared_ptr<Block>> blocks_;
  torch::nn::LayerNorm final_norm_{nullptr};
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(ByteTransformer);

}  // namespace terse::torch_adapter

#include "terse/torch/byte_transformer.h"

#include <cmath>
#include <string>

#include <torch/nn/functional/activation.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "terse/core/check.h"

namespace terse::torch_adapter {

// One pre-LayerNorm block: h + attention(LN(h)), then h + MLP(LN(h)).
struct ByteTransformerImpl::Block : torch::nn::Module {
  Block(int64_t d, int64_t heads) : heads_(heads), head_dim_(d / heads) {
    namespace nn = torch::nn;
    ln1_ = register_module("ln1", nn::LayerNorm(nn::LayerNormOptions({d})));
    qkv_ = register_module("qkv", nn::Linear(d, 3 * d));
    proj_ = register_module("proj", nn::Linear(d, d));
    ln2_ = register_module("ln2", nn::LayerNorm(nn::LayerNormOptions({d})));
    fc1_ = register_module("fc1", nn::Linear(d, 4 * d));
    fc2_ = register_module("fc2", nn::Linear(4 * d, d));
  }

  at::Tensor forward(const at::Tensor& h, const at::Tensor& mask) {
    const int64_t b = h.size(0), t = h.size(1), d = h.size(2);
    // [B, T, 3, H, Dh] -> three [B, H, T, Dh]
    const at::Tensor qkv =
        qkv_->forward(ln1_->forward(h)).view({b, t, 3, heads_, head_dim_}).permute({2, 0, 3, 1, 4});
    const at::Tensor q = qkv[0], k = qkv[1], v = qkv[2];
    const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
    at::Tensor att = at::matmul(q, k.transpose(-2, -1)).mul_(scale);
    att = at::softmax(att.masked_fill(mask, -INFINITY), -1);
    const at::Tensor y = at::matmul(att, v).transpose(1, 2).reshape({b, t, d});
    const at::Tensor h1 = h + proj_->forward(y);
    return h1 + fc2_->forward(at::gelu(fc1_->forward(ln2_->forward(h1))));
  }

  int64_t heads_, head_dim_;
  torch::nn::LayerNorm ln1_{nullptr}, ln2_{nullptr};
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr}, fc1_{nullptr}, fc2_{nullptr};
};

ByteTransformerImpl::ByteTransformerImpl(const ByteTransformerOptions& o) : options_(o) {
  TERSE_CHECK(o.d_model >= 1 && o.heads >= 1 && o.layers >= 1 && o.context >= 1, InvalidArgument,
              "byte transformer sizes must be >= 1, got d_model ", o.d_model, ", heads ", o.heads,
              ", layers ", o.layers, ", context ", o.context);
  TERSE_CHECK(o.d_model % o.heads == 0, InvalidArgument, "byte transformer: heads (", o.heads,
              ") must divide d_model (", o.d_model, "); pick another head count");
  namespace nn = torch::nn;
  token_embedding_ = register_parameter("token_embedding", at::empty({o.kVocab, o.d_model}));
  position_embedding_ = register_parameter("position_embedding", at::empty({o.context, o.d_model}));
  {
    at::NoGradGuard no_grad;
    nn::init::normal_(token_embedding_, 0.0, 0.02);
    nn::init::normal_(position_embedding_, 0.0, 0.02);
  }
  // True above the diagonal: position t attends to positions <= t only.
  causal_mask_ =
      register_buffer("causal_mask", at::ones({o.context, o.context}, at::kBool).triu(1));
  for (int64_t i = 0; i < o.layers; ++i) {
    blocks_.push_back(
        register_module("block" + std::to_string(i), std::make_shared<Block>(o.d_model, o.heads)));
  }
  final_norm_ = register_module("final_norm", nn::LayerNorm(nn::LayerNormOptions({o.d_model})));
  head_ = register_module("head", nn::Linear(o.d_model, o.kVocab));
}

at::Tensor ByteTransformerImpl::forward(const at::Tensor& bytes) {
  TERSE_CHECK(bytes.dim() == 2 && bytes.size(1) >= 1 && bytes.size(1) <= options_.context,
              InvalidArgument,
              "byte transformer input must be [batch, T] with 1 <= T <= ", options_.context,
              ", got ", bytes.sizes());
  const int64_t t = bytes.size(1);
  at::Tensor h = at::embedding(token_embedding_, bytes) + position_embedding_.slice(0, 0, t);
  const at::Tensor mask = causal_mask_.slice(0, 0, t).slice(1, 0, t);
  for (const auto& block : blocks_) h = block->forward(h, mask);
  return head_->forward(final_norm_->forward(h));
}

}  // namespace terse::torch_adapter

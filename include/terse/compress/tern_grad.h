#pragma once

#include "terse/compress/compressor.h"

namespace terse {

// TernGrad (Wen et al., "TernGrad: Ternary gradients to reduce communication in distributed deep
// learning", NeurIPS 2017), without the optional 2.5-sigma clipping: s = max|x|,
// C(x)_i = s * sign(x_i) * b_i with b_i ~ Bernoulli(|x_i| / s) drawn from Philox keyed by
// seed_step. Unbiased: E[C(x)] = x.
// Body: s (f32), then 2 bits per element MSB-first: 00 = 0, 01 = +s, 10 = -s (11 is invalid).
class TernGrad : public Compressor {
 public:
  std::string name() const override { return "terngrad"; }
  std::string spec() const override { return "terngrad"; }
  CompressorId id() const override { return CompressorId::kTernGrad; }
  size_t max_encoded_bytes(int64_t numel) const override;

 protected:
  size_t encode_body(const float* x, int64_t n, uint64_t seed_step, PayloadHeader& header,
                     uint8_t* body) const override;
  void decode_body(const PayloadHeader& header, const uint8_t* body, float* out, int64_t n,
                   bool accumulate, float weight) const override;
};

}  // namespace terse

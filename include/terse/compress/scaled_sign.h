#pragma once

#include "terse/compress/compressor.h"

namespace terse {

// Scaled sign (EF-SignSGD, Karimireddy et al., "Error feedback fixes SignSGD", ICML 2019):
// C(x) = (||x||_1 / n) * sign(x), sign(0) = +1. Biased; use with error feedback.
// scale = float(l1 / double(n)), l1 = sum |double(x_i)| added in double in the fixed order of
// terse/kernels/fixed_order_sum.h (16 lane partials per block of 2048, then a pairwise tree),
// which the GPU codec (terse/kernels/cuda_sign_codec.h) follows too, so both write the same
// bytes. NumericalError when the scale is not finite (x holds NaN or Inf).
// Body: the scale (f32), then one bit per element packed MSB-first, 1 = negative, the last byte
// zero padded. 1 bit per element plus 32 bits.
class ScaledSign : public Compressor {
 public:
  std::string name() const override { return "sign"; }
  std::string spec() const override { return "sign"; }
  CompressorId id() const override { return CompressorId::kScaledSign; }
  size_t max_encoded_bytes(int64_t numel) const override;

 protected:
  size_t encode_body(const float* x, int64_t n, uint64_t seed_step, PayloadHeader& header,
                     uint8_t* body) const override;
  void decode_body(const PayloadHeader& header, const uint8_t* body, float* out, int64_t n,
                   bool accumulate, float weight) const override;
};

}  // namespace terse

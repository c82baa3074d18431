#pragma once

#include "terse/compress/compressor.h"

namespace terse {

// Scaled sign (EF-SignSGD, Karimireddy et al., "Error feedback fixes SignSGD", ICML 2019):
// C(x) = (||x||_1 / n) * sign(x), sign(0) = +1. Biased; use with error feedback.
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

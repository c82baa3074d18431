#pragma once

#include "terse/compress/compressor.h"

namespace terse {

// Seide 1-bit quantisation (Seide, Fu, Droppo, Li, Yu, "1-Bit Stochastic Gradient Descent and its
// Application to Data-Parallel Distributed Training of Speech DNNs", Interspeech 2014; as GRACE's
// OneBitCompressor): one bit per element, b_i = [x_i >= 0], and two reconstruction values per
// tensor, the mean of the negative elements mu_- and the mean of the non-negative ones mu_+ (0
// where a group is empty). C(x)_i = b_i ? mu_+ : mu_-. Both means preserve the group sums, so
// sum(C(x)) = sum(x); biased per element, use with error feedback (the paper's "error feedback").
// Body: mu_- (f32), mu_+ (f32), then n bits MSB-first in each byte, 1 = non-negative, the last
// byte zero padded: n + 64 bits. decode rejects a non-finite mean, mu_- > 0 or mu_+ < 0.
class OneBit : public Compressor {
 public:
  std::string name() const override { return "onebit"; }
  std::string spec() const override { return "onebit"; }
  CompressorId id() const override { return CompressorId::kOneBit; }
  size_t max_encoded_bytes(int64_t numel) const override;

 protected:
  size_t encode_body(const float* x, int64_t n, uint64_t seed_step, PayloadHeader& header,
                     uint8_t* body) const override;
  void decode_body(const PayloadHeader& header, const uint8_t* body, float* out, int64_t n,
                   bool accumulate, float weight) const override;
};

}  // namespace terse

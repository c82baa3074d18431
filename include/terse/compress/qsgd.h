#pragma once

#include "terse/compress/compressor.h"

namespace terse {

// QSGD (Alistarh et al., "QSGD: Communication-efficient SGD via gradient quantization and
// encoding", NeurIPS 2017), one bucket per tensor: Q(x)_i = ||x||_2 * sign(x_i) * l_i / s where
// l_i = floor(s |x_i| / ||x||_2) + 1 with probability s |x_i| / ||x||_2 - floor(...), else the
// floor (stochastic rounding from Philox keyed by seed_step). Unbiased: E[Q(x)] = x, with
// E||Q(x) - x||^2 <= min(n / s^2, sqrt(n) / s) ||x||^2.
// ||x||_2 = float(sqrt(sq)), sq = sum double(x_i)^2 added in double in the fixed order of
// terse/kernels/fixed_order_sum.h (16 lane partials per block of 2048, then a pairwise tree),
// which the GPU codec (terse/kernels/cuda_quant_codec.h) follows too. NumericalError when the
// norm is not finite (NaN or Inf in x, or ||x||_2 above FLT_MAX).
// Body: s (u32), ||x||_2 (f32), then per element 1 sign bit + ceil(log2(s + 1)) level bits,
// packed MSB-first, the last byte zero padded.
class Qsgd : public Compressor {
 public:
  explicit Qsgd(uint32_t levels);
  std::string name() const override { return "qsgd"; }
  std::string spec() const override;
  CompressorId id() const override { return CompressorId::kQsgd; }
  size_t max_encoded_bytes(int64_t numel) const override;
  // Bits per element in the packed body.
  unsigned field_bits() const { return field_bits_; }

 protected:
  size_t encode_body(const float* x, int64_t n, uint64_t seed_step, PayloadHeader& header,
                     uint8_t* body) const override;
  void decode_body(const PayloadHeader& header, const uint8_t* body, float* out, int64_t n,
                   bool accumulate, float weight) const override;

 private:
  uint32_t levels_;
  unsigned field_bits_;
};

}  // namespace terse

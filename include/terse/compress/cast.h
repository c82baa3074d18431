#pragma once

#include "terse/compress/compressor.h"

namespace terse {

// Half-precision cast (as PyTorch's fp16_compress_hook / Horovod Compression.fp16): every
// element rounded to nearest even to IEEE binary16 ("fp16": relative error <= 2^-11 in the
// normal range, overflow to inf) or bfloat16 ("bf16": relative error <= 2^-8, f32's range).
// Deterministic, nearly unbiased. Body: n 16-bit values, little-endian.
class Cast : public Compressor {
 public:
  // coding is ValueCoding::kF16 or kBF16.
  explicit Cast(ValueCoding coding);
  std::string name() const override;
  std::string spec() const override { return name(); }
  CompressorId id() const override;
  size_t max_encoded_bytes(int64_t numel) const override;

 protected:
  size_t encode_body(const float* x, int64_t n, uint64_t seed_step, PayloadHeader& header,
                     uint8_t* body) const override;
  void decode_body(const PayloadHeader& header, const uint8_t* body, float* out, int64_t n,
                   bool accumulate, float weight) const override;

 private:
  ValueCoding coding_;
};

}  // namespace terse

#pragma once

#include "terse/compress/compressor.h"

namespace terse {

// Top-k sparsification (Stich, Cordonnier, Jaggi, "Sparsified SGD with memory", NeurIPS 2018;
// used by DGC, Lin et al. ICLR 2018): keep the k = max(1, floor(density * n)) entries of largest
// |x_i| (ties broken by the lower index, so every run picks the same set), zero the rest. With an
// absolute k (with_k, spec "topk:k=K") it keeps min(K, n) entries of every tensor.
// Biased and contractive: ||C(x) - x||^2 <= (1 - k/n) ||x||^2; pair it with error feedback.
// Body: k values (f32 or f16) then the k ascending indices as delta LEB128 varints.
class TopK : public Compressor {
 public:
  TopK(double density, ValueCoding values);
  // A fixed k per tensor (min(k, n) for a tensor of n < k elements). InvalidArgument for
  // k < 1 or k > 2^48.
  static TopK with_k(int64_t k, ValueCoding values);
  std::string name() const override { return "topk"; }
  std::string spec() const override;
  CompressorId id() const override { return CompressorId::kTopK; }
  size_t max_encoded_bytes(int64_t numel) const override;
  // The number of entries kept of a tensor of numel elements (0 for numel <= 0).
  int64_t k_for(int64_t numel) const;

 protected:
  size_t encode_body(const float* x, int64_t n, uint64_t seed_step, PayloadHeader& header,
                     uint8_t* body) const override;
  void decode_body(const PayloadHeader& header, const uint8_t* body, float* out, int64_t n,
                   bool accumulate, float weight) const override;

 private:
  double density_;
  ValueCoding values_;
  int64_t k_ = 0;  // > 0: absolute k (with_k); 0: k from density_
};

}  // namespace terse

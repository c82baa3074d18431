#pragma once

#include "terse/compress/compressor.h"

namespace terse {

// Random-k sparsification (Stich et al., NeurIPS 2018; Wangni et al., NeurIPS 2018): keep
// k = max(1, floor(density * n)) distinct coordinates, the first k outputs of a keyed
// pseudo-random permutation of [0, n) (terse/kernels/rand_k_permutation.h: a Feistel network
// keyed by Philox4x32(seed_step), cycle walking), so every rank with the same seed_step picks the
// same coordinates, on the CPU and on the GPU alike. Each coordinate is kept with probability
// k/n, each k-subset about equally likely (payload version 2; version 1 used Floyd's sequential
// algorithm, whose seed meant other coordinates). With scale=true the kept values are multiplied by
// n/k, which makes E[C(x)] = x (unbiased, variance factor n/k - 1); scale=false sends them as they
// are (GRACE). Body: seed_step (u64), k values (f32 or f16), then, only with send_indices=true, the
// indices as delta LEB128 varints; otherwise the decoder regenerates them from seed_step.
class RandK : public Compressor {
 public:
  RandK(double density, ValueCoding values, bool scale, bool send_indices);
  std::string name() const override { return "randk"; }
  std::string spec() const override;
  CompressorId id() const override { return CompressorId::kRandK; }
  size_t max_encoded_bytes(int64_t numel) const override;
  int64_t k_for(int64_t numel) const;
  // The ascending coordinates kept for (numel, seed_step).
  std::vector<int64_t> indices(int64_t numel, uint64_t seed_step) const;

 protected:
  size_t encode_body(const float* x, int64_t n, uint64_t seed_step, PayloadHeader& header,
                     uint8_t* body) const override;
  void decode_body(const PayloadHeader& header, const uint8_t* body, float* out, int64_t n,
                   bool accumulate, float weight) const override;

 private:
  double density_;
  ValueCoding values_;
  bool scale_;
  bool send_indices_;
};

}  // namespace terse

#pragma once

#include "terse/compress/compressor.h"
#include "terse/compress/dgc/sparse_selection.h"

namespace terse {

// Deep Gradient Compression's sampled-threshold top-k (Lin, Han, Mao, Wang, Dally, "Deep Gradient
// Compression", ICLR 2018; reference synxlin/deep-gradient-compression, dgc/compression.py): the
// threshold thr is the top_k_samples-th largest |x_i| of a strided sample (sample ratio sigma,
// random start from Philox at seed_step), adapted at most 10 times (x1.3 / x0.8 bounds, exact
// top-k over the candidates when more than 1.3k pass); C(x)_i = x_i for the selected
// {i : |x_i| >= thr}, 0 elsewhere. At most k = ceil(density * n) entries are kept (the first k in
// index order when more pass: the reference's truncation), so the count is k or somewhat fewer,
// never more. Selection is dgc_select (terse/compress/dgc/sparse_selection.h).
// Body: the same as TopK's: count values (f32 or f16), then the count ascending indices as delta
// LEB128 varints. decode accepts any count <= numel, so a receiver decodes payloads of any
// density (a sparsity warm-up changes it per epoch).
// The trainer selects from DGC's velocity V, masks V and U at the selected indices, then encodes
// that selection: select() + encode_selection() == encode().
class DgcTopK : public Compressor {
 public:
  // density in (0, 1]; values f32 or f16; sample_ratio in [0.01, 1] (the reference clamps lower
  // ratios to 0.01, this rejects them). InvalidArgument otherwise.
  DgcTopK(double density, ValueCoding values, double sample_ratio = 0.01);

  std::string name() const override { return "dgc"; }
  std::string spec() const override;
  CompressorId id() const override { return CompressorId::kDgc; }
  size_t max_encoded_bytes(int64_t numel) const override;

  double density() const { return density_; }
  double sample_ratio() const { return sample_ratio_; }
  ValueCoding values() const { return values_; }
  // The most entries a selection of numel elements holds: ceil(density * numel), 0 for 0.
  int64_t k_for(int64_t numel) const;

  // dgc_select over x[0, n) (an empty selection for n == 0). NumericalError when the sample
  // holds a NaN.
  SparseSelection select(const float* x, int64_t n, uint64_t seed_step) const;
  // Writes the payload (header and body) of selection s of a tensor of n elements into out and
  // returns its bytes. InvalidArgument when cap < max_encoded_bytes(n), when s holds more than
  // k_for(n) entries, different numbers of indices and values, or indices not strictly
  // increasing in [0, n); NumericalError when a value is NaN.
  size_t encode_selection(const SparseSelection& s, int64_t n, uint8_t* out, size_t cap) const;
  // The pairs of the payload [data, data + len) of a tensor of n elements (f16 values widened to
  // f32), validated as decode() validates them (CorruptData): what decode scatters, as a list,
  // for a scatter-add elsewhere (the GPU's, cuda_scatter_add.h).
  SparseSelection decode_selection(const uint8_t* data, size_t len, int64_t n) const;

 protected:
  size_t encode_body(const float* x, int64_t n, uint64_t seed_step, PayloadHeader& header,
                     uint8_t* body) const override;
  void decode_body(const PayloadHeader& header, const uint8_t* body, float* out, int64_t n,
                   bool accumulate, float weight) const override;

 private:
  size_t write_selection_body(const SparseSelection& s, PayloadHeader& header, uint8_t* body) const;

  double density_;
  ValueCoding values_;
  double sample_ratio_;
};

}  // namespace terse

#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "terse/compress/wire_format.h"
#include "terse/core/tensor_view.h"

namespace terse {

// A pure gradient compressor: encode an f32 tensor into a self-describing payload (wire_format.h)
// and decode a payload into (or onto) an f32 tensor. No hidden state: the same input and
// seed_step give the same bytes on every rank; randomised compressors draw from Philox4x32 keyed
// by seed_step (the caller folds its seed and step into it, e.g. seed ^ step * odd constant), so
// any rank can reproduce another rank's random choices. Error feedback lives above this layer.
class Compressor {
 public:
  virtual ~Compressor() = default;

  // "topk", "randk", ...: the name make_compressor accepts.
  virtual std::string name() const = 0;
  // The spec string with every option spelled out, e.g. "topk:density=0.01,values=f32".
  virtual std::string spec() const = 0;
  virtual CompressorId id() const = 0;

  // A true upper bound on encode()'s output for numel elements, header included.
  virtual size_t max_encoded_bytes(int64_t numel) const = 0;

  // Encodes in (f32, CPU) into out and returns the bytes written. cap must be at least
  // max_encoded_bytes(in.numel) (InvalidArgument otherwise), so no encode can overrun out.
  size_t encode(TensorView in, uint64_t seed_step, uint8_t* out, size_t cap) const;

  // Decodes the payload [data, data + len), times weight, into out (f32, CPU, numel equal to the
  // payload's): accumulate = false overwrites out (unselected elements become 0), accumulate =
  // true adds weight * decoded to out (scatter-add of many ranks' payloads; a sparse payload
  // touches only its selected elements, so EF21's weighted sum needs no dense pass per payload).
  // Each element gets out + weight * v with the product rounded to f32 first; weight 1 writes v
  // as decoded. weight must be finite (InvalidArgument). Every field is validated before out is
  // touched; a malformed payload throws CorruptData and leaves out unchanged.
  void decode(const uint8_t* data, size_t len, TensorView out, bool accumulate,
              float weight = 1.0f) const;

 protected:
  // The header of the payload [data, data + len), checked as decode() checks it against a tensor
  // of `numel` elements (magic, version, this compressor's id, numel, lengths): CorruptData.
  PayloadHeader checked_header(const uint8_t* data, size_t len, int64_t numel) const;
  // Fills header.count / values / indices and writes the body at body (room for
  // max_encoded_bytes - header); returns the body bytes.
  virtual size_t encode_body(const float* x, int64_t n, uint64_t seed_step, PayloadHeader& header,
                             uint8_t* body) const = 0;
  // Validates the body against header (already checked: magic, version, id, numel, lengths) and
  // only then writes out[0, n) as decode() describes (weight finite).
  virtual void decode_body(const PayloadHeader& header, const uint8_t* body, float* out, int64_t n,
                           bool accumulate, float weight) const = 0;
};

// Builds a compressor from "name" or "name:key=value,key=value". Names and options:
//   topk:density=D,values=f32|f16          (D in (0, 1], default 0.01)
//   topk:k=K,values=f32|f16                (K entries per tensor, integer >= 1; not with density)
//   randk:density=D,values=f32|f16,scale=true|false,send_indices=true|false
//   sign                                   (scaled sign, 1 bit per element)
//   qsgd:levels=S                          (S in [1, 32767], default 127)
//   terngrad
//   fp16, bf16
//   onebit                                 (Seide 1-bit: 1 bit per element + 2 means)
//   dgc:density=D,values=f32|f16,sample=S  (DGC sampled threshold; D default 0.001, S in
//                                           [0.01, 1], default 0.01)
// Throws InvalidArgument naming the key, the value seen and the valid range.
std::unique_ptr<Compressor> make_compressor(const std::string& spec);

// The names make_compressor accepts.
std::vector<std::string> compressor_names();

}  // namespace terse

#include "terse/compress/compressor.h"

#include <cmath>
#include <cstring>

#include "terse/core/check.h"

namespace terse {

size_t Compressor::encode(TensorView in, uint64_t seed_step, uint8_t* out, size_t cap) const {
  TERSE_CHECK(in.dtype == DType::kF32, InvalidArgument, name(), " encode: input dtype is ",
              dtype_name(in.dtype), ", expected f32; convert the gradient to f32 first");
  TERSE_CHECK(in.device.is_cpu(), InvalidArgument, name(), " encode: input is on ", in.device.str(),
              ", expected cpu; copy it to host memory first");
  TERSE_CHECK(in.numel >= 0, InvalidArgument, name(), " encode: numel ", in.numel, " is negative");
  TERSE_CHECK(in.numel == 0 || in.data != nullptr, InvalidArgument, name(),
              " encode: input data is null for ", in.numel, " elements");
  const size_t bound = max_encoded_bytes(in.numel);
  TERSE_CHECK(cap >= bound, InvalidArgument, name(), " encode: output capacity ", cap,
              " bytes is below max_encoded_bytes(", in.numel, ") = ", bound,
              "; size the buffer with max_encoded_bytes");
  TERSE_CHECK(out != nullptr, InvalidArgument, name(), " encode: output buffer is null");
  PayloadHeader h;
  h.compressor = id();
  h.numel = static_cast<uint64_t>(in.numel);
  const size_t body = encode_body(static_cast<const float*>(in.data), in.numel, seed_step, h,
                                  out + kPayloadHeaderBytes);
  h.body_bytes = body;
  write_payload_header(h, out);
  return kPayloadHeaderBytes + body;
}

void Compressor::decode(const uint8_t* data, size_t len, TensorView out, bool accumulate,
                        float weight) const {
  TERSE_CHECK(out.dtype == DType::kF32, InvalidArgument, name(), " decode: output dtype is ",
              dtype_name(out.dtype), ", expected f32");
  TERSE_CHECK(out.device.is_cpu(), InvalidArgument, name(), " decode: output is on ",
              out.device.str(), ", expected cpu");
  TERSE_CHECK(out.numel >= 0 && (out.numel == 0 || out.data != nullptr), InvalidArgument, name(),
              " decode: output view is invalid (numel ", out.numel, ")");
  TERSE_CHECK(data != nullptr || len == 0, InvalidArgument, name(),
              " decode: payload pointer is null with length ", len);
  TERSE_CHECK(std::isfinite(weight), InvalidArgument, name(), " decode: weight is ", weight,
              "; it must be finite");
  const PayloadHeader h = checked_header(data, len, out.numel);
  decode_body(h, data + kPayloadHeaderBytes, static_cast<float*>(out.data), out.numel, accumulate,
              weight);
}

PayloadHeader Compressor::checked_header(const uint8_t* data, size_t len, int64_t numel) const {
  const PayloadHeader h = read_payload_header(data, len);
  TERSE_CHECK(h.compressor == id(), CorruptData, "payload: compressor id ",
              int{static_cast<uint8_t>(h.compressor)}, " (", compressor_id_name(h.compressor),
              "), expected ", int{static_cast<uint8_t>(id())}, " (", name(),
              "); every rank must use the same compressor");
  TERSE_CHECK(h.numel == static_cast<uint64_t>(numel), CorruptData, "payload: numel ", h.numel,
              ", expected ", numel, " (the output tensor); payload and bucket layouts disagree");
  return h;
}

}  // namespace terse

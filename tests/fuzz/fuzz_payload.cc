// Fuzz target: Compressor::decode for every compressor. The first input byte picks the
// compressor spec (mod the list below), the rest is the payload. The output tensor takes the
// numel the payload's header claims (capped, so a huge claim exercises the numel check instead
// of allocating), and is decoded into both ways (overwrite and accumulate). Any decode must
// either throw terse::Error or leave finite-length, in-bounds writes (ASan checks the bounds).
// Seeds in corpus/payload/: valid payloads per spec (the selector byte + encode()), written by
// make_seeds.cc. New specs go at the end of the list so existing seeds keep their selector.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "terse/compress/compressor.h"
#include "terse/core/error.h"

namespace {

const char* const kSpecs[] = {"topk:density=0.1",
                              "topk:density=0.1,values=f16",
                              "randk:density=0.25",
                              "randk:density=0.25,send_indices=true,values=f16",
                              "sign",
                              "qsgd:levels=5",
                              "qsgd:levels=127",
                              "terngrad",
                              "fp16",
                              "bf16",
                              "onebit",
                              "dgc:density=0.1",
                              "dgc:density=0.1,values=f16"};
constexpr size_t kNumSpecs = sizeof(kSpecs) / sizeof(kSpecs[0]);
constexpr uint64_t kMaxNumel = uint64_t{1} << 20;

const std::vector<std::unique_ptr<terse::Compressor>>& compressors() {
  static const auto* all = [] {
    auto* v = new std::vector<std::unique_ptr<terse::Compressor>>();
    for (const char* s : kSpecs) v->push_back(terse::make_compressor(s));
    return v;
  }();
  return *all;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const terse::Compressor& c = *compressors()[data[0] % kNumSpecs];
  const uint8_t* payload = data + 1;
  const size_t len = size - 1;
  uint64_t numel = 16;
  if (len >= 16) {
    uint64_t claimed = 0;
    for (int i = 0; i < 8; ++i) claimed |= uint64_t{payload[8 + i]} << (8 * i);
    if (claimed <= kMaxNumel) numel = claimed;
  }
  std::vector<float> out(static_cast<size_t>(numel), 1.0f);
  const terse::TensorView view = terse::TensorView::of(out.data(), static_cast<int64_t>(numel));
  try {
    c.decode(payload, len, view, false);
    // A payload that decodes once decodes again, onto the result, then weighted (EF21's sum).
    c.decode(payload, len, view, true);
    c.decode(payload, len, view, true, -0.625f);
  } catch (const terse::Error&) {
  }
  return 0;
}

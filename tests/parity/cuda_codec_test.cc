// The CUDA compression kernels (terse/kernels/cuda_*_codec.h, cuda_scatter_add.h, cuda_rand_k.h)
// against the CPU compressors, bit for bit: the GPU's body bytes equal the CPU payload's body,
// the GPU decode of the CPU body equals the CPU decode (overwrite and accumulate), a corrupt body
// is refused with CorruptData and leaves the output as it was. Sizes 1, 2, 7, 4097, 65537 and
// 2^20 + 3 (odd tails). Skipped, with a message, without a GPU; the argument checks that need no
// GPU run everywhere.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "cuda_codec_test_util.h"
#include "seq_sum.cuh"
#include "terse/compress/one_bit.h"
#include "terse/compress/qsgd.h"
#include "terse/compress/scaled_sign.h"
#include "terse/compress/tern_grad.h"
#include "terse/core/error.h"
#include "terse/kernels/cuda_quant_codec.h"
#include "terse/kernels/cuda_sign_codec.h"

namespace terse::codec_test {
namespace {

using cuda_codec::SumTerm;

// --- the sequential double sum, exact to the last bit of the double -----------------------------

double cpu_sum(const std::vector<float>& x, SumTerm term) {
  double s = 0.0;
  for (const float v : x) {
    s += term == SumTerm::kAbs ? std::fabs(static_cast<double>(v)) : static_cast<double>(v) * v;
  }
  return s;
}

void expect_sum(const std::vector<float>& x, SumTerm term, const std::string& what) {
  DeviceBuffer dx(x);
  const auto got = cuda_codec::cuda_sequential_sum(dx.f32(), static_cast<int64_t>(x.size()), term);
  const double want = cpu_sum(x, term);
  EXPECT_TRUE(got.finite) << what;
  uint64_t a, b;
  std::memcpy(&a, &want, 8);
  std::memcpy(&b, &got.sum, 8);
  EXPECT_EQ(a, b) << what << ": CPU " << want << ", GPU " << got.sum << " (difference "
                  << got.sum - want << ")";
}

TEST(CudaSequentialSum, EqualsTheCpuLoopToTheLastBit) {
  TERSE_SKIP_WITHOUT_GPU();
  std::vector<int64_t> sizes = kSizes;
  sizes.push_back((int64_t{1} << 22) + 7);  // 1025 chunks: many binade crossings
  for (const int64_t n : sizes) {
    for (const bool wide : {false, true}) {
      for (const uint64_t seed : {1u, 2u}) {
        const std::vector<float> x = random_floats(n, seed + 10 * n, wide);
        const std::string what = "n=" + std::to_string(n) + (wide ? " wide" : " narrow") +
                                 " seed=" + std::to_string(seed);
        expect_sum(x, SumTerm::kAbs, what + " |x|");
        expect_sum(x, SumTerm::kSquare, what + " x^2");
      }
    }
  }
}

TEST(CudaSequentialSum, HandlesZeroRunsTiesAndNonFiniteTerms) {
  TERSE_SKIP_WITHOUT_GPU();
  // Zeros first (the walk starts at s = 0), a whole zero chunk later, and terms whose
  // remainders are exactly half an ulp of the running sum: with s in [2^30, 2^31) the ulp is
  // 2^-22, and 1 + 2^-23 leaves half of it (a tie, to even), 1 + 3 * 2^-23 one and a half.
  std::vector<float> x(100000, 0.0f);
  x[20000] = 0x1p30f;
  for (size_t i = 20001; i < 100000; ++i) {
    if (i >= 30000 && i < 40000) continue;
    x[i] = i % 3 == 0 ? 1.0f + 0x1p-23f : (i % 3 == 1 ? 1.0f + 0x3p-23f : 0.5f + 0x1p-24f);
  }
  expect_sum(x, SumTerm::kAbs, "zero runs and ties");
  expect_sum(std::vector<float>(5000, 0.0f), SumTerm::kAbs, "all zero");
  std::vector<float> bad = random_floats(9000, 3, false);
  bad[8000] = std::numeric_limits<float>::infinity();
  DeviceBuffer db(bad);
  EXPECT_FALSE(cuda_codec::cuda_sequential_sum(db.f32(), 9000, SumTerm::kAbs).finite);
  bad[8000] = std::numeric_limits<float>::quiet_NaN();
  db.upload(bad.data(), bad.size() * 4);
  EXPECT_FALSE(cuda_codec::cuda_sequential_sum(db.f32(), 9000, SumTerm::kSquare).finite);
}

// --- OneBit and ScaledSign -------------------------------------------------------------------

using EncodeFn = size_t (*)(const float*, int64_t, uint8_t*, size_t);
using DecodeFn = void (*)(const uint8_t*, size_t, float*, int64_t, bool);

// Encode on both sides and compare bodies; decode the CPU body on both sides, overwrite and
// accumulate, and compare the floats.
void check_codec(const Compressor& c, EncodeFn enc, DecodeFn dec, size_t (*body_bytes)(int64_t),
                 const std::vector<float>& x, uint64_t seed_step, const std::string& what) {
  const auto n = static_cast<int64_t>(x.size());
  const std::vector<uint8_t> payload = cpu_payload(c, x, seed_step);
  const std::vector<uint8_t> body = body_of(payload);
  const size_t cap = body_bytes(n);
  ASSERT_EQ(cap, body.size()) << what;
  DeviceBuffer dx(x), dbody(cap);
  const size_t got = enc(dx.f32(), n, dbody.u8(), cap);
  ASSERT_EQ(got, body.size()) << what;
  expect_same_bytes(body, dbody.download<uint8_t>(got), what + " encode");
  DeviceBuffer cpu_body(body);
  for (const bool acc : {false, true}) {
    const std::vector<float> init = random_floats(n, 99, false);
    DeviceBuffer dout(init);
    dec(cpu_body.u8(), body.size(), dout.f32(), n, acc);
    expect_same_bytes(cpu_decode(c, payload, init, acc), dout.download<float>(x.size()),
                      what + (acc ? " decode accumulate" : " decode"));
  }
}

TEST(CudaSignCodec, OneBitMatchesTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  std::vector<int64_t> sizes = kSizes;
  sizes.push_back((int64_t{1} << 23) + 5);  // 65552 lanes: the lane sum walks 17 chunks
  for (const int64_t n : sizes) {
    for (const bool wide : {false, true}) {
      check_codec(OneBit(), cuda_onebit_encode, cuda_onebit_decode, cuda_onebit_body_bytes,
                  random_floats(n, 7 + n, wide), 0,
                  "onebit n=" + std::to_string(n) + (wide ? " wide" : ""));
    }
  }
  // One sign only: one mean is 0.
  std::vector<float> pos(4099, 0.5f), neg(4099, -0.25f);
  check_codec(OneBit(), cuda_onebit_encode, cuda_onebit_decode, cuda_onebit_body_bytes, pos, 0,
              "onebit all positive");
  check_codec(OneBit(), cuda_onebit_encode, cuda_onebit_decode, cuda_onebit_body_bytes, neg, 0,
              "onebit all negative");
}

TEST(CudaSignCodec, ScaledSignMatchesTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  for (const int64_t n : kSizes) {
    for (const bool wide : {false, true}) {
      check_codec(ScaledSign(), cuda_scaled_sign_encode, cuda_scaled_sign_decode,
                  cuda_scaled_sign_body_bytes, random_floats(n, 5 + n, wide), 0,
                  "sign n=" + std::to_string(n) + (wide ? " wide" : ""));
    }
  }
}

TEST(CudaSignCodec, NonFiniteInputThrowsNumericalErrorAsOnTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  for (const float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
        -std::numeric_limits<float>::infinity()}) {
    std::vector<float> x = random_floats(5000, 1, false);
    x[4321] = bad;
    EXPECT_THROW(cpu_payload(OneBit(), x, 0), NumericalError);
    EXPECT_THROW(cpu_payload(ScaledSign(), x, 0), NumericalError);
    DeviceBuffer dx(x), dbody(cuda_onebit_body_bytes(5000));
    EXPECT_THROW(cuda_onebit_encode(dx.f32(), 5000, dbody.u8(), dbody.bytes), NumericalError);
    EXPECT_THROW(cuda_scaled_sign_encode(dx.f32(), 5000, dbody.u8(), dbody.bytes), NumericalError);
  }
}

// A corrupt body throws CorruptData and leaves out as it was.
void expect_refused(DecodeFn dec, const std::vector<uint8_t>& body, size_t len, int64_t n,
                    const std::string& what) {
  const std::vector<float> init = random_floats(n, 4, false);
  DeviceBuffer dbody(body), dout(init);
  EXPECT_THROW(dec(dbody.u8(), len, dout.f32(), n, true), CorruptData) << what;
  expect_same_bytes(init, dout.download<float>(init.size()), what + ": out unchanged");
}

TEST(CudaSignCodec, CorruptBodiesAreRefusedBeforeWriting) {
  TERSE_SKIP_WITHOUT_GPU();
  const int64_t n = 13;  // 2 bytes of bits, 3 padding bits
  const std::vector<float> x = random_floats(n, 8, false);
  std::vector<uint8_t> one = body_of(cpu_payload(OneBit(), x, 0));
  std::vector<uint8_t> sign = body_of(cpu_payload(ScaledSign(), x, 0));
  expect_refused(cuda_onebit_decode, one, one.size() - 1, n, "onebit short body");
  expect_refused(cuda_scaled_sign_decode, sign, sign.size() - 1, n, "sign short body");
  std::vector<uint8_t> b = one;
  b.back() |= 1u;  // a padding bit
  expect_refused(cuda_onebit_decode, b, b.size(), n, "onebit padding");
  b = one;
  b[3] = 0x3f;  // mean of the negatives becomes positive (0x3f.... as the high byte)
  b[2] = 0x80;
  expect_refused(cuda_onebit_decode, b, b.size(), n, "onebit positive negative-mean");
  b = sign;
  b.back() |= 4u;
  expect_refused(cuda_scaled_sign_decode, b, b.size(), n, "sign padding");
  b = sign;
  b[3] = 0xff;  // NaN scale
  b[2] = 0xc0;
  expect_refused(cuda_scaled_sign_decode, b, b.size(), n, "sign NaN scale");
}

// --- QSGD and TernGrad ------------------------------------------------------------------------

const std::vector<uint64_t> kSeeds = {0, 12345, 0xdeadbeefcafe1234ull};

TEST(CudaQuantCodec, QsgdMatchesTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  // Field widths 2, 3, 8, 10 and 16 bits: groups of 8 elements end on byte boundaries.
  for (const uint32_t levels : {1u, 3u, 127u, 511u, 32767u}) {
    for (const int64_t n : kSizes) {
      for (const uint64_t seed : kSeeds) {
        if (n > 70000 && seed != kSeeds[1]) continue;
        const std::vector<float> x = random_floats(n, 3 * n + levels, levels == 127u);
        const Qsgd cpu(levels);
        const std::string what = "qsgd levels=" + std::to_string(levels) +
                                 " n=" + std::to_string(n) + " seed=" + std::to_string(seed);
        const std::vector<uint8_t> payload = cpu_payload(cpu, x, seed);
        const std::vector<uint8_t> body = body_of(payload);
        ASSERT_EQ(cuda_qsgd_body_bytes(n, levels), body.size()) << what;
        DeviceBuffer dx(x), dbody(body.size());
        ASSERT_EQ(cuda_qsgd_encode(dx.f32(), n, levels, seed, dbody.u8(), body.size()),
                  body.size());
        expect_same_bytes(body, dbody.download<uint8_t>(body.size()), what + " encode");
        DeviceBuffer cpu_body(body);
        for (const bool acc : {false, true}) {
          const std::vector<float> init = random_floats(n, 98, false);
          DeviceBuffer dout(init);
          cuda_qsgd_decode(cpu_body.u8(), body.size(), levels, dout.f32(), n, acc);
          expect_same_bytes(cpu_decode(cpu, payload, init, acc), dout.download<float>(init.size()),
                            what + (acc ? " decode accumulate" : " decode"));
        }
      }
    }
  }
}

TEST(CudaQuantCodec, TernGradMatchesTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  for (const int64_t n : kSizes) {
    for (const uint64_t seed : kSeeds) {
      const std::vector<float> x = random_floats(n, 5 * n + seed, seed == 0);
      const TernGrad cpu;
      const std::string what = "terngrad n=" + std::to_string(n) + " seed=" + std::to_string(seed);
      const std::vector<uint8_t> payload = cpu_payload(cpu, x, seed);
      const std::vector<uint8_t> body = body_of(payload);
      ASSERT_EQ(cuda_terngrad_body_bytes(n), body.size()) << what;
      DeviceBuffer dx(x), dbody(body.size());
      ASSERT_EQ(cuda_terngrad_encode(dx.f32(), n, seed, dbody.u8(), body.size()), body.size());
      expect_same_bytes(body, dbody.download<uint8_t>(body.size()), what + " encode");
      DeviceBuffer cpu_body(body);
      for (const bool acc : {false, true}) {
        const std::vector<float> init = random_floats(n, 97, false);
        DeviceBuffer dout(init);
        cuda_terngrad_decode(cpu_body.u8(), body.size(), dout.f32(), n, acc);
        expect_same_bytes(cpu_decode(cpu, payload, init, acc), dout.download<float>(init.size()),
                          what + (acc ? " decode accumulate" : " decode"));
      }
    }
  }
}

TEST(CudaQuantCodec, NonFiniteInputAndCorruptBodies) {
  TERSE_SKIP_WITHOUT_GPU();
  std::vector<float> x = random_floats(3000, 6, false);
  x[2999] = std::numeric_limits<float>::infinity();
  DeviceBuffer dx(x), dbody(cuda_qsgd_body_bytes(3000, 32767));
  EXPECT_THROW(cpu_payload(Qsgd(5), x, 1), NumericalError);
  EXPECT_THROW(cuda_qsgd_encode(dx.f32(), 3000, 5, 1, dbody.u8(), dbody.bytes), NumericalError);
  EXPECT_THROW(cpu_payload(TernGrad(), x, 1), NumericalError);
  EXPECT_THROW(cuda_terngrad_encode(dx.f32(), 3000, 1, dbody.u8(), dbody.bytes), NumericalError);

  const int64_t n = 11;  // qsgd levels=5: 4-bit fields, 44 bits, 4 padding bits
  const std::vector<float> y = random_floats(n, 9, false);
  const std::vector<uint8_t> q = body_of(cpu_payload(Qsgd(5), y, 3));
  auto qsgd5 = [](const uint8_t* b, size_t len, float* out, int64_t m, bool acc) {
    cuda_qsgd_decode(b, len, 5, out, m, acc);
  };
  expect_refused(qsgd5, q, q.size() + 1, n, "qsgd long body");
  std::vector<uint8_t> b = q;
  b[8] = static_cast<uint8_t>((b[8] & 0x0f) | 0x70);  // element 0: level 7 > 5
  expect_refused(qsgd5, b, b.size(), n, "qsgd level above levels");
  b = q;
  b[0] = 6;  // the levels field
  expect_refused(qsgd5, b, b.size(), n, "qsgd levels field");
  b = q;
  b.back() |= 0x08;
  expect_refused(qsgd5, b, b.size(), n, "qsgd padding");
  b = q;
  b[7] = 0xbf;  // negative norm
  expect_refused(qsgd5, b, b.size(), n, "qsgd negative norm");

  const std::vector<uint8_t> t = body_of(cpu_payload(TernGrad(), y, 3));
  b = t;
  b[4 + 1] |= 0x03;  // element 7: code 3
  expect_refused(cuda_terngrad_decode, b, b.size(), n, "terngrad code 3");
  b = t;
  b.back() |= 0x01;  // 22 bits used, 2 padding bits
  expect_refused(cuda_terngrad_decode, b, b.size(), n, "terngrad padding");
}

// --- argument checks (no GPU needed: they fail before any CUDA call) --------------------------

TEST(CudaCodecArguments, NullPointersAndBadSizesAreInvalidArguments) {
  std::vector<uint8_t> host(64);
  EXPECT_THROW(cuda_onebit_encode(nullptr, 5, host.data(), host.size()), Error);
  EXPECT_THROW(cuda_onebit_encode(nullptr, -1, host.data(), host.size()), InvalidArgument);
  EXPECT_THROW(cuda_onebit_encode(nullptr, 5, host.data(), 3), InvalidArgument);  // cap < 9
  EXPECT_THROW(cuda_scaled_sign_decode(nullptr, 5, nullptr, 5, false), Error);
  EXPECT_THROW(cuda_onebit_body_bytes(-3), InvalidArgument);
  try {
    cuda_onebit_encode(nullptr, 5, host.data(), host.size());
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("x is null"), std::string::npos) << e.what();
  } catch (const CudaError& e) {
    ADD_FAILURE() << "expected the null check before any CUDA call: " << e.what();
  }
}

TEST(CudaCodecArguments, HostPointersAreRefused) {
  TERSE_SKIP_WITHOUT_GPU();
  std::vector<float> x(100, 1.0f);
  std::vector<uint8_t> body(cuda_onebit_body_bytes(100));
  EXPECT_THROW(cuda_onebit_encode(x.data(), 100, body.data(), body.size()), InvalidArgument);
}

}  // namespace
}  // namespace terse::codec_test

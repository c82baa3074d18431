// The CUDA compression kernels (terse/kernels/cuda_*_codec.h, cuda_scatter_add.h, cuda_rand_k.h)
// against the CPU compressors, bit for bit: the GPU's body bytes equal the CPU payload's body,
// the GPU decode of the CPU body equals the CPU decode (overwrite and accumulate), a corrupt body
// is refused with CorruptData and leaves the output as it was. Sizes 1, 2, 7, 4097, 65537 and
// 2^20 + 3 (odd tails), more for the sums; all-zero, Inf and NaN inputs. Skipped, with a message,
// without a GPU; the argument checks that need no GPU run everywhere.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "cuda_codec_test_util.h"
#include "fixed_sum.cuh"
#include "seq_sum.cuh"
#include "terse/compress/cast.h"
#include "terse/compress/one_bit.h"
#include "terse/compress/qsgd.h"
#include "terse/compress/rand_k.h"
#include "terse/compress/scaled_sign.h"
#include "terse/compress/tern_grad.h"
#include "terse/compress/top_k.h"
#include "terse/compress/wire_format.h"
#include "terse/core/error.h"
#include "terse/kernels/cuda_cast_codec.h"
#include "terse/kernels/cuda_quant_codec.h"
#include "terse/kernels/cuda_rand_k.h"
#include "terse/kernels/cuda_scatter_add.h"
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

// --- the fixed-order sum of ScaledSign's and QSGD's norms, exact to the last bit ---------------

// One lane, a block and one, a thread block of partials (16 blocks) and one, and enough for one
// and two tree passes after the lane pass (more than 256 and 65536 partials).
const std::vector<int64_t> kSumSizes = {1,
                                        2,
                                        7,
                                        17,
                                        2047,
                                        2048,
                                        2049,
                                        4097,
                                        32768,
                                        32769,
                                        65537,
                                        99999,
                                        (int64_t{1} << 20) + 3,
                                        (int64_t{1} << 23) + 5,
                                        (int64_t{1} << 24) + 2049};

double gpu_fixed_sum(const std::vector<float>& x, fixed_sum::Term term) {
  DeviceBuffer dx(x), dout(sizeof(double));
  cuda_codec::enqueue_fixed_sum(dx.f32(), static_cast<int64_t>(x.size()), term,
                                static_cast<double*>(dout.ptr));
  return dout.download<double>(1)[0];  // cudaMemcpy waits for the default stream
}

// Equal bits, or both NaN (the GPU's NaN may be the canonical one).
void expect_fixed_sum(const std::vector<float>& x, fixed_sum::Term term, const std::string& what) {
  const double want = fixed_sum::host_sum(x.data(), static_cast<int64_t>(x.size()), term);
  const double got = gpu_fixed_sum(x, term);
  if (std::isnan(want) && std::isnan(got)) return;
  uint64_t a, b;
  std::memcpy(&a, &want, 8);
  std::memcpy(&b, &got, 8);
  EXPECT_EQ(a, b) << what << (term == fixed_sum::Term::kAbs ? " |x|" : " x^2") << ": CPU " << want
                  << ", GPU " << got << " (difference " << got - want << ")";
}

TEST(CudaFixedSum, EqualsTheCpuOrderToTheLastBit) {
  TERSE_SKIP_WITHOUT_GPU();
  for (const int64_t n : kSumSizes) {
    for (const bool wide : {false, true}) {
      const std::vector<float> x = random_floats(n, 21 + n, wide);
      const std::string what = "n=" + std::to_string(n) + (wide ? " wide" : " narrow");
      expect_fixed_sum(x, fixed_sum::Term::kAbs, what);
      expect_fixed_sum(x, fixed_sum::Term::kSquare, what);
    }
  }
}

TEST(CudaFixedSum, ZerosInfinitiesAndNaN) {
  TERSE_SKIP_WITHOUT_GPU();
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const int64_t n : {int64_t{1}, int64_t{4097}, (int64_t{1} << 20) + 3}) {
    const auto last = static_cast<size_t>(n - 1);
    std::vector<float> zeros(static_cast<size_t>(n), 0.0f);
    zeros[last] = -0.0f;
    for (const auto t : {fixed_sum::Term::kAbs, fixed_sum::Term::kSquare}) {
      EXPECT_EQ(gpu_fixed_sum(zeros, t), 0.0) << n;
      EXPECT_FALSE(std::signbit(gpu_fixed_sum(zeros, t))) << n;
      std::vector<float> x = random_floats(n, 5, true);
      x[last] = -inf;
      EXPECT_EQ(gpu_fixed_sum(x, t), std::numeric_limits<double>::infinity()) << n;
      expect_fixed_sum(x, t, "-Inf n=" + std::to_string(n));
      x[0] = nan;
      EXPECT_TRUE(std::isnan(gpu_fixed_sum(x, t))) << n;
      expect_fixed_sum(x, t, "NaN n=" + std::to_string(n));
      std::vector<float> big(static_cast<size_t>(n), -std::numeric_limits<float>::max());
      expect_fixed_sum(big, t, "FLT_MAX n=" + std::to_string(n));
    }
  }
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
  for (const int64_t n : kSumSizes) {
    for (const bool wide : {false, true}) {
      check_codec(ScaledSign(), cuda_scaled_sign_encode, cuda_scaled_sign_decode,
                  cuda_scaled_sign_body_bytes, random_floats(n, 5 + n, wide), 0,
                  "sign n=" + std::to_string(n) + (wide ? " wide" : ""));
    }
  }
  // All zero (scale 0, every bit 0: -0 is not negative), and one sign only.
  for (const int64_t n : {int64_t{1}, int64_t{4097}, int64_t{65543}}) {
    std::vector<float> zeros(static_cast<size_t>(n), 0.0f);
    for (size_t i = 0; i < zeros.size(); i += 3) zeros[i] = -0.0f;
    const std::string m = " n=" + std::to_string(n);
    check_codec(ScaledSign(), cuda_scaled_sign_encode, cuda_scaled_sign_decode,
                cuda_scaled_sign_body_bytes, zeros, 0, "sign all zero" + m);
    check_codec(ScaledSign(), cuda_scaled_sign_encode, cuda_scaled_sign_decode,
                cuda_scaled_sign_body_bytes, std::vector<float>(static_cast<size_t>(n), -0.75f), 0,
                "sign all negative" + m);
  }
}

TEST(CudaSignCodec, NonFiniteInputThrowsNumericalErrorAsOnTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  for (const float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
        -std::numeric_limits<float>::infinity()}) {
    for (const int64_t n : {int64_t{1}, int64_t{4097}, int64_t{5000}, (int64_t{1} << 20) + 3}) {
      // The first element, one inside, the last (a short block's tail lane).
      for (const int64_t at : {int64_t{0}, n / 2 + 1, n - 1}) {
        if (at >= n) continue;
        std::vector<float> x = random_floats(n, 1, false);
        x[static_cast<size_t>(at)] = bad;
        const std::string what = "n=" + std::to_string(n) + " at=" + std::to_string(at);
        EXPECT_THROW(cpu_payload(OneBit(), x, 0), NumericalError) << what;
        EXPECT_THROW(cpu_payload(ScaledSign(), x, 0), NumericalError) << what;
        DeviceBuffer dx(x), dbody(cuda_onebit_body_bytes(n));
        EXPECT_THROW(cuda_onebit_encode(dx.f32(), n, dbody.u8(), dbody.bytes), NumericalError)
            << what;
        EXPECT_THROW(cuda_scaled_sign_encode(dx.f32(), n, dbody.u8(), dbody.bytes), NumericalError)
            << what;
      }
    }
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

TEST(CudaQuantCodec, QsgdSumSizesZerosAndHugeValues) {
  TERSE_SKIP_WITHOUT_GPU();
  auto check = [](const std::vector<float>& x, uint32_t levels, const std::string& what) {
    const auto n = static_cast<int64_t>(x.size());
    const Qsgd cpu(levels);
    const std::vector<uint8_t> body = body_of(cpu_payload(cpu, x, 77));
    DeviceBuffer dx(x), dbody(body.size());
    ASSERT_EQ(cuda_qsgd_encode(dx.f32(), n, levels, 77, dbody.u8(), body.size()), body.size());
    expect_same_bytes(body, dbody.download<uint8_t>(body.size()), what + " encode");
  };
  for (const int64_t n : kSumSizes) {
    check(random_floats(n, 8 * n + 1, true), 127, "qsgd wide n=" + std::to_string(n));
  }
  for (const int64_t n : {int64_t{1}, int64_t{4097}, int64_t{65543}}) {
    check(std::vector<float>(static_cast<size_t>(n), 0.0f), 5, "qsgd all zero");  // norm 0
    // |x_i| = 2^57: the sum of the squares (up to 2^130) is beyond the float range, the norm
    // (about 2^65) is not.
    check(std::vector<float>(static_cast<size_t>(n), -0x1p57f), 5, "qsgd large values");
  }
  // ||x||_2 above FLT_MAX: +Inf as a float, NumericalError on both.
  const std::vector<float> huge(64, std::numeric_limits<float>::max());
  EXPECT_THROW(cpu_payload(Qsgd(5), huge, 1), NumericalError);
  DeviceBuffer dh(huge), dbody(cuda_qsgd_body_bytes(64, 5));
  EXPECT_THROW(cuda_qsgd_encode(dh.f32(), 64, 5, 1, dbody.u8(), dbody.bytes), NumericalError);
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
  for (const float bad :
       {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
        std::numeric_limits<float>::quiet_NaN()}) {
    for (const int64_t m : {int64_t{1}, int64_t{3000}, int64_t{4097}}) {
      std::vector<float> x = random_floats(m, 6, false);
      x[static_cast<size_t>(m - 1)] = bad;
      const std::string what = "n=" + std::to_string(m) + " last=" + std::to_string(bad);
      DeviceBuffer dx(x), dbody(cuda_qsgd_body_bytes(m, 32767));
      EXPECT_THROW(cpu_payload(Qsgd(5), x, 1), NumericalError) << what;
      EXPECT_THROW(cuda_qsgd_encode(dx.f32(), m, 5, 1, dbody.u8(), dbody.bytes), NumericalError)
          << what;
      EXPECT_THROW(cpu_payload(TernGrad(), x, 1), NumericalError) << what;
      EXPECT_THROW(cuda_terngrad_encode(dx.f32(), m, 1, dbody.u8(), dbody.bytes), NumericalError)
          << what;
    }
  }

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

// --- fp16 / bf16 casts -----------------------------------------------------------------------

TEST(CudaCastCodec, Fp16AndBf16MatchTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  for (const DType coding : {DType::kF16, DType::kBF16}) {
    const Cast cpu(coding == DType::kF16 ? ValueCoding::kF16 : ValueCoding::kBF16);
    for (const int64_t n : kSizes) {
      // wide values reach f16's overflow (inf) and subnormal ranges; add NaN, inf, ties.
      std::vector<float> x = random_floats(n, 13 * n, true);
      const float special[] = {std::numeric_limits<float>::quiet_NaN(),
                               std::numeric_limits<float>::infinity(),
                               65504.0f,
                               65520.0f,
                               1.0f + 0x1p-11f,
                               0x1p-25f,
                               0x3p-26f,
                               -0x1p-24f,
                               1.0f + 0x1p-8f};
      for (size_t k = 0; k < std::size(special) && k < x.size(); ++k) x[k] = special[k];
      const std::string what = std::string(dtype_name(coding)) + " n=" + std::to_string(n);
      const std::vector<uint8_t> payload = cpu_payload(cpu, x, 0);
      const std::vector<uint8_t> body = body_of(payload);
      ASSERT_EQ(cuda_cast_body_bytes(n), body.size());
      // One byte into the allocation: the unaligned (byte-wise) path.
      for (const size_t offset : {size_t{0}, size_t{1}}) {
        DeviceBuffer dx(x), dbody(body.size() + 1);
        ASSERT_EQ(cuda_cast_encode(dx.f32(), n, coding, dbody.u8() + offset, body.size()),
                  body.size());
        std::vector<uint8_t> got = dbody.download<uint8_t>(body.size() + offset);
        got.erase(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(offset));
        expect_same_bytes(body, got, what + " encode offset " + std::to_string(offset));
        EXPECT_EQ(cudaMemcpy(dbody.u8() + offset, body.data(), body.size(), cudaMemcpyHostToDevice),
                  cudaSuccess);
        for (const bool acc : {false, true}) {
          const std::vector<float> init = random_floats(n, 96, false);
          DeviceBuffer dout(init);
          cuda_cast_decode(dbody.u8() + offset, body.size(), coding, dout.f32(), n, acc);
          // x[0] is NaN: with accumulate, init + NaN is the canonical NaN on the GPU.
          expect_same_floats_any_nan(cpu_decode(cpu, payload, init, acc),
                                     dout.download<float>(init.size()),
                                     what + (acc ? " decode accumulate" : " decode"));
        }
      }
    }
  }
  const std::vector<float> init(5, 1.0f);
  DeviceBuffer dbody(10), dout(init);
  EXPECT_THROW(cuda_cast_decode(dbody.u8(), 9, DType::kF16, dout.f32(), 5, false), CorruptData);
  expect_same_bytes(init, dout.download<float>(5), "cast short body: out unchanged");
  EXPECT_THROW(cuda_cast_encode(dout.f32(), 5, DType::kF32, dbody.u8(), 10), InvalidArgument);
}

// --- sparse scatter-add ----------------------------------------------------------------------

// The (index, value) lists of a CPU Top-k payload (f32 values, delta-varint indices).
void parse_sparse(const std::vector<uint8_t>& payload, std::vector<int64_t>* idx,
                  std::vector<float>* val) {
  const PayloadHeader h = read_payload_header(payload.data(), payload.size());
  const uint8_t* body = payload.data() + kPayloadHeaderBytes;
  val->resize(h.count);
  std::memcpy(val->data(), body, h.count * sizeof(float));
  const uint8_t* p = body + h.count * sizeof(float);
  const uint8_t* end = payload.data() + payload.size();
  idx->resize(h.count);
  int64_t prev = 0;
  for (uint64_t k = 0; k < h.count; ++k) {
    const auto d = static_cast<int64_t>(read_varint(&p, end, "index"));
    prev = k == 0 ? d : prev + d;
    (*idx)[k] = prev;
  }
}

TEST(CudaScatterAdd, RankOrderedSumEqualsTheCpuDecodes) {
  TERSE_SKIP_WITHOUT_GPU();
  for (const int64_t n : kSizes) {
    for (const double density : {0.01, 0.5, 1.0}) {
      const TopK cpu(density, ValueCoding::kF32);
      const int ranks = 4;
      std::vector<std::vector<uint8_t>> payloads;
      std::vector<std::vector<int64_t>> idx(ranks);
      std::vector<std::vector<float>> val(ranks);
      std::vector<std::unique_ptr<DeviceBuffer>> dev;
      std::vector<CudaSparseList> lists;
      for (int r = 0; r < ranks; ++r) {
        payloads.push_back(cpu_payload(cpu, random_floats(n, 31 * r + n, r % 2 == 1), 0));
        parse_sparse(payloads.back(), &idx[r], &val[r]);
        dev.push_back(std::make_unique<DeviceBuffer>(idx[r]));
        dev.push_back(std::make_unique<DeviceBuffer>(val[r]));
        lists.push_back({static_cast<const int64_t*>(dev[2 * r]->ptr), dev[2 * r + 1]->f32(),
                         static_cast<int64_t>(idx[r].size())});
      }
      for (const bool acc : {false, true}) {
        const std::vector<float> init = random_floats(n, 95, false);
        std::vector<float> want = init;
        for (int r = 0; r < ranks; ++r) want = cpu_decode(cpu, payloads[r], want, acc || r > 0);
        DeviceBuffer dout(init);
        cuda_scatter_add(lists.data(), lists.size(), dout.f32(), n, acc);
        expect_same_bytes(want, dout.download<float>(init.size()),
                          "scatter-add n=" + std::to_string(n) +
                              " density=" + std::to_string(density) + (acc ? " accumulate" : ""));
      }
    }
  }
}

TEST(CudaScatterAdd, BadIndicesAreCorruptDataAndOutIsUntouched) {
  TERSE_SKIP_WITHOUT_GPU();
  const int64_t n = 1000;
  const std::vector<int64_t> good = {0, 5, 999};
  const std::vector<float> vals = {1.0f, 2.0f, 3.0f};
  for (const std::vector<int64_t>& bad :
       {std::vector<int64_t>{0, 5, 1000}, std::vector<int64_t>{-1, 5, 7},
        std::vector<int64_t>{3, 3, 7}, std::vector<int64_t>{9, 5, 7}}) {
    DeviceBuffer dgood(good), dbad(bad), dval(vals);
    const CudaSparseList lists[3] = {{static_cast<const int64_t*>(dgood.ptr), dval.f32(), 3},
                                     {static_cast<const int64_t*>(dgood.ptr), dval.f32(), 3},
                                     {static_cast<const int64_t*>(dbad.ptr), dval.f32(), 3}};
    const std::vector<float> init = random_floats(n, 94, false);
    DeviceBuffer dout(init);
    for (const bool acc : {false, true}) {
      EXPECT_THROW(cuda_scatter_add(lists, 3, dout.f32(), n, acc), CorruptData);
      expect_same_bytes(init, dout.download<float>(init.size()), "bad index: out unchanged");
    }
  }
}

// --- Rand-k -----------------------------------------------------------------------------------

TEST(CudaRandK, IndicesAreTheCpuPermutation) {
  TERSE_SKIP_WITHOUT_GPU();
  std::vector<int64_t> sizes = kSizes;
  sizes.push_back(256);                     // the network's domain exactly: no cycle walking
  sizes.push_back(257);                     // 512: walked
  sizes.push_back((int64_t{1} << 22) + 7);  // 2^23: walked, 23-bit sort keys
  sizes.push_back((int64_t{1} << 24));      // 24 bits exactly
  for (const int64_t n : sizes) {
    // 0.001: the CPU sorts (large n); 0.01 and up: the CPU's bitmap; 1: every index (iota).
    for (const double density : {0.001, 0.01, 0.3, 1.0}) {
      for (const uint64_t seed : kSeeds) {
        const RandK cpu(density, ValueCoding::kF32, true, false);
        const std::vector<int64_t> want = cpu.indices(n, seed);
        const int64_t k = cpu.k_for(n);
        DeviceBuffer didx(static_cast<size_t>(k) * sizeof(int64_t));
        cuda_rand_k_indices(n, k, seed, static_cast<int64_t*>(didx.ptr));
        expect_same_bytes(want, didx.download<int64_t>(static_cast<size_t>(k)),
                          "randk indices n=" + std::to_string(n) + " density=" +
                              std::to_string(density) + " seed=" + std::to_string(seed));
      }
    }
  }
}

TEST(CudaRandK, BodyAndDecodeMatchTheCpu) {
  TERSE_SKIP_WITHOUT_GPU();
  std::vector<int64_t> sizes = kSizes;
  sizes.push_back(257);
  for (const int64_t n : sizes) {
    for (const bool half : {false, true}) {
      for (const bool scale : {false, true}) {
        const double density = 0.1;
        const uint64_t seed = 777 + static_cast<uint64_t>(n);
        const RandK cpu(density, half ? ValueCoding::kF16 : ValueCoding::kF32, scale, false);
        const DType values = half ? DType::kF16 : DType::kF32;
        const int64_t k = cpu.k_for(n);
        const std::vector<float> x = random_floats(n, 41 * n, false);
        const std::string what =
            "randk n=" + std::to_string(n) + (half ? " f16" : " f32") + (scale ? " scale" : "");
        const std::vector<uint8_t> payload = cpu_payload(cpu, x, seed);
        const std::vector<uint8_t> body = body_of(payload);
        ASSERT_EQ(cuda_rand_k_body_bytes(k, values), body.size()) << what;
        DeviceBuffer dx(x), dbody(body.size());
        ASSERT_EQ(cuda_rand_k_encode(dx.f32(), n, k, scale, values, seed, dbody.u8(), body.size()),
                  body.size());
        expect_same_bytes(body, dbody.download<uint8_t>(body.size()), what + " encode");
        DeviceBuffer cpu_body(body);
        for (const bool acc : {false, true}) {
          const std::vector<float> init = random_floats(n, 93, false);
          DeviceBuffer dout(init);
          cuda_rand_k_decode(cpu_body.u8(), body.size(), k, values, dout.f32(), n, acc);
          expect_same_bytes(cpu_decode(cpu, payload, init, acc), dout.download<float>(init.size()),
                            what + (acc ? " decode accumulate" : " decode"));
        }
      }
    }
  }
  const std::vector<float> init(100, 2.0f);
  DeviceBuffer dbody(100), dout(init);
  EXPECT_THROW(cuda_rand_k_decode(dbody.u8(), 47, 10, DType::kF32, dout.f32(), 100, false),
               CorruptData);
  expect_same_bytes(init, dout.download<float>(100), "randk short body: out unchanged");
  EXPECT_THROW(cuda_rand_k_decode(dbody.u8(), 48, 101, DType::kF32, dout.f32(), 100, false),
               InvalidArgument);
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

#include "terse/compress/dgc_top_k.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "terse/compress/compressor.h"
#include "terse/compress/dgc/sparse_selection.h"
#include "terse/compress/top_k.h"
#include "terse/core/error.h"
#include "terse/core/philox.h"

namespace terse {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes encode(const Compressor& c, const std::vector<float>& x, uint64_t seed_step = 3) {
  Bytes buf(c.max_encoded_bytes(static_cast<int64_t>(x.size())));
  buf.resize(c.encode(TensorView::of(const_cast<float*>(x.data()), static_cast<int64_t>(x.size())),
                      seed_step, buf.data(), buf.size()));
  return buf;
}

std::vector<float> decode(const Compressor& c, const Bytes& p, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n), 123.0f);
  c.decode(p.data(), p.size(), TensorView::of(out.data(), n), false);
  return out;
}

void expect_corrupt(const Compressor& c, const Bytes& p, int64_t n, const std::string& field) {
  if (const auto* dgc = dynamic_cast<const DgcTopK*>(&c)) {  // the list decoder checks the same
    try {
      dgc->decode_selection(p.data(), p.size(), n);
      ADD_FAILURE() << "decode_selection: no CorruptData for " << field;
    } catch (const CorruptData& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  }
  for (bool accumulate : {false, true}) {
    std::vector<float> out(static_cast<size_t>(n), 7.0f);
    try {
      c.decode(p.data(), p.size(), TensorView::of(out.data(), n), accumulate);
      ADD_FAILURE() << "no CorruptData for " << field;
    } catch (const CorruptData& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
    for (float v : out) ASSERT_EQ(v, 7.0f) << field;
  }
}

// Approximately N(0, 1) (sum of 4 uniforms, rescaled): the shape of a gradient bucket.
std::vector<float> gaussian(int64_t n, uint64_t seed) {
  PhiloxStream rng(seed, 5);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) {
    float s = 0;
    for (int j = 0; j < 4; ++j) s += rng.uniform();
    v = (s - 2.0f) * 1.7320508f;
  }
  return x;
}

const std::vector<float> kHand = {0.1f, -5.0f, 0.3f, 2.0f, -0.2f, 4.0f, 0.0f, -3.0f};

TEST(DgcTopK, SpecAndFactory) {
  auto c = make_compressor("dgc");
  EXPECT_EQ(c->name(), "dgc");
  EXPECT_EQ(c->id(), CompressorId::kDgc);
  EXPECT_EQ(c->spec(), "dgc:density=0.001,values=f32,sample=0.01");
  EXPECT_EQ(make_compressor("dgc:sample=0.05,values=f16,density=0.01")->spec(),
            "dgc:density=0.01,values=f16,sample=0.05");
  EXPECT_EQ(make_compressor(c->spec())->spec(), c->spec());
  const char* bad[] = {"dgc:density=0",    "dgc:density=1.5", "dgc:values=bf16",
                       "dgc:sample=0.001", "dgc:sample=2",    "dgc:k=5"};
  for (const char* s : bad) EXPECT_THROW(make_compressor(s), InvalidArgument) << s;
  EXPECT_STREQ(compressor_id_name(CompressorId::kDgc), "dgc");
}

TEST(DgcTopK, HandComputedSelection) {
  // n = 8 <= ceil(2 / 0.5): the sample is the whole tensor, thr = the 4th largest |x| = 2.
  DgcTopK c(0.5, ValueCoding::kF32);
  EXPECT_EQ(c.k_for(8), 4);
  const Bytes p = encode(c, kHand);
  const PayloadHeader h = read_payload_header(p.data(), p.size());
  EXPECT_EQ(h.count, 4u);
  EXPECT_EQ(h.values, ValueCoding::kF32);
  EXPECT_EQ(h.indices, IndexCoding::kDeltaVarint);
  // 4 f32 values, then indices 1, 3, 5, 7 as gaps 1, 2, 2, 2.
  ASSERT_EQ(p.size(), kPayloadHeaderBytes + 16 + 4);
  EXPECT_EQ(Bytes(p.end() - 4, p.end()), (Bytes{1, 2, 2, 2}));
  EXPECT_EQ(decode(c, p, 8), (std::vector<float>{0, -5, 0, 2, 0, 4, 0, -3}));
  // Same body as TopK's: the payloads differ only in the compressor id byte.
  Bytes t = encode(TopK(0.5, ValueCoding::kF32), kHand);
  ASSERT_EQ(t.size(), p.size());
  EXPECT_EQ(t[5], 1);
  t[5] = 9;
  EXPECT_EQ(t, p);
}

TEST(DgcTopK, TiesTruncateInIndexOrder) {
  // All |x| equal the threshold: all pass, the first k in index order are kept.
  DgcTopK c(0.5, ValueCoding::kF32);
  EXPECT_EQ(decode(c, encode(c, {1, -1, 1, 1}), 4), (std::vector<float>{1, -1, 0, 0}));
}

TEST(DgcTopK, SelectionEqualsDgcSelect) {
  for (const double density : {0.001, 0.01}) {
    for (const double sample : {0.01, 0.05}) {
      DgcTopK c(density, ValueCoding::kF32, sample);
      const int64_t n = 200003;
      const auto x = gaussian(n, 17);
      for (uint64_t step : {1u, 2u, 99u}) {
        DgcSelectOptions o;
        o.sample_ratio = sample;
        const SparseSelection want = dgc_select(x.data(), n, density, step, o);
        const SparseSelection got = c.select(x.data(), n, step);
        ASSERT_EQ(got.indices, want.indices);
        ASSERT_EQ(got.values, want.values);
        EXPECT_LE(static_cast<int64_t>(got.indices.size()), c.k_for(n));
        EXPECT_GE(static_cast<double>(got.indices.size()), 0.8 * static_cast<double>(c.k_for(n)));
        // encode == select + encode_selection, and decode scatters exactly the selection.
        const Bytes p = encode(c, x, step);
        Bytes q(c.max_encoded_bytes(n));
        q.resize(c.encode_selection(got, n, q.data(), q.size()));
        EXPECT_EQ(p, q);
        const auto y = decode(c, p, n);
        std::vector<float> expect(static_cast<size_t>(n), 0.0f);
        for (size_t j = 0; j < got.indices.size(); ++j)
          expect[static_cast<size_t>(got.indices[j])] = got.values[j];
        ASSERT_EQ(y, expect);
      }
    }
  }
}

TEST(DgcTopK, F16ValuesRoundToHalf) {
  DgcTopK c(0.5, ValueCoding::kF16);
  std::vector<float> x = {0.1f, -5.0f, 0.3f, 2.0f, -0.2f, 4.0f, 0.0f, 1.0f / 3.0f};
  const Bytes p = encode(c, x);
  EXPECT_EQ(p.size(), kPayloadHeaderBytes + 8 + 4);
  const auto y = decode(c, p, 8);
  EXPECT_EQ(y[1], -5.0f);
  EXPECT_EQ(y[3], 2.0f);
  EXPECT_EQ(y[5], 4.0f);
  EXPECT_EQ(y[7], 0.333251953125f);  // 1/3 rounded to the nearest half
  EXPECT_EQ(y[0], 0.0f);
}

TEST(DgcTopK, AccumulateAdds) {
  DgcTopK c(0.5, ValueCoding::kF32);
  const Bytes p = encode(c, kHand);
  std::vector<float> acc = {1, 1, 1, 1, 1, 1, 1, 1};
  c.decode(p.data(), p.size(), TensorView::of(acc.data(), 8), true);
  EXPECT_EQ(acc, (std::vector<float>{1, -4, 1, 3, 1, 5, 1, -2}));
}

TEST(DgcTopK, MaxEncodedBytesBoundsEveryPayload) {
  for (const char* spec : {"dgc:density=0.001", "dgc:density=0.3,values=f16", "dgc:density=1"}) {
    auto c = make_compressor(spec);
    for (int64_t n : {0, 1, 2, 7, 999, 4097, 100000}) {
      auto x = gaussian(n, static_cast<uint64_t>(n) + 1);
      for (size_t i = 0; i < x.size(); i += 3) x[i] *= 1e6f;
      const size_t bound = c->max_encoded_bytes(n);
      Bytes buf(bound + 16, 0xAB);
      const size_t len = c->encode(TensorView::of(x.data(), n), 5, buf.data(), bound);
      EXPECT_LE(len, bound) << spec << " n=" << n;
      for (size_t j = bound; j < buf.size(); ++j) ASSERT_EQ(buf[j], 0xAB) << spec;
      const PayloadHeader h = read_payload_header(buf.data(), len);
      EXPECT_LE(h.count, static_cast<uint64_t>(dynamic_cast<DgcTopK&>(*c).k_for(n)));
    }
    EXPECT_THROW(c->max_encoded_bytes(-1), InvalidArgument);
  }
  EXPECT_EQ(DgcTopK(0.001, ValueCoding::kF32).k_for(25600000), 25600);
  EXPECT_EQ(DgcTopK(0.001, ValueCoding::kF32).k_for(1001), 2);  // ceil, not floor
}

TEST(DgcTopK, EncodeSelectionValidatesItsInput) {
  DgcTopK c(0.5, ValueCoding::kF32);
  Bytes buf(c.max_encoded_bytes(8));
  SparseSelection s;
  s.indices = {1, 3, 5, 7, 0};
  s.values = {1, 1, 1, 1, 1};
  EXPECT_THROW(c.encode_selection(s, 8, buf.data(), buf.size()), InvalidArgument);  // 5 > k
  s.indices = {1, 3};
  s.values = {1};
  EXPECT_THROW(c.encode_selection(s, 8, buf.data(), buf.size()), InvalidArgument);  // sizes
  s.values = {1, 2};
  s.indices = {3, 1};
  EXPECT_THROW(c.encode_selection(s, 8, buf.data(), buf.size()), InvalidArgument);  // order
  s.indices = {1, 8};
  EXPECT_THROW(c.encode_selection(s, 8, buf.data(), buf.size()), InvalidArgument);  // range
  s.indices = {1, 3};
  EXPECT_THROW(c.encode_selection(s, 8, buf.data(), buf.size() - 1), InvalidArgument);  // cap
  s.values = {1, std::numeric_limits<float>::quiet_NaN()};
  EXPECT_THROW(c.encode_selection(s, 8, buf.data(), buf.size()), NumericalError);
  s.values = {1.5f, -2.5f};
  const size_t len = c.encode_selection(s, 8, buf.data(), buf.size());
  buf.resize(len);
  EXPECT_EQ(decode(c, buf, 8), (std::vector<float>{0, 1.5f, 0, -2.5f, 0, 0, 0, 0}));
  // An empty selection and an empty tensor.
  EXPECT_EQ(c.encode_selection(SparseSelection{}, 8, buf.data(), c.max_encoded_bytes(8)),
            kPayloadHeaderBytes);
  Bytes e(c.max_encoded_bytes(0));
  EXPECT_EQ(c.encode(TensorView::of(static_cast<float*>(nullptr), 0), 1, e.data(), e.size()),
            kPayloadHeaderBytes);
  EXPECT_TRUE(c.select(nullptr, 0, 1).indices.empty());
}

TEST(DgcTopK, CorruptPayloadsAreRejected) {
  DgcTopK c(0.5, ValueCoding::kF32);
  const Bytes good = encode(c, kHand);  // indices 1, 3, 5, 7: gap bytes at the end
  Bytes p = good;
  p.pop_back();
  expect_corrupt(c, p, 8, "truncated");
  p = good;
  p[4] = 0;
  expect_corrupt(c, p, 8, "version 0");
  p = good;
  p.back() = 3;  // last index 5 + 3 = 8 >= numel
  expect_corrupt(c, p, 8, "out of range");
  p = good;
  p[p.size() - 2] = 0;  // a zero gap
  expect_corrupt(c, p, 8, "does not increase");
  p = good;
  p[6] = static_cast<uint8_t>(ValueCoding::kF16);
  expect_corrupt(c, p, 8, "value coding f16");
  p = good;
  p[5] = 1;  // a topk payload is not a dgc payload
  expect_corrupt(c, p, 8, "compressor id 1 (topk)");
  expect_corrupt(DgcTopK(0.5, ValueCoding::kF16), good, 8, "value coding f32");
  expect_corrupt(c, good, 9, "numel 8, expected 9");
}

// decode_selection gives the pairs decode scatters: the selection's indices and its values as
// sent (f16-rounded for f16).
TEST(DgcTopK, DecodeSelectionListsWhatDecodeScatters) {
  const std::vector<float> x = gaussian(5000, 9);
  for (ValueCoding values : {ValueCoding::kF32, ValueCoding::kF16}) {
    const DgcTopK c(0.01, values);
    const SparseSelection sel = c.select(x.data(), 5000, 4);
    Bytes p(c.max_encoded_bytes(5000));
    p.resize(c.encode_selection(sel, 5000, p.data(), p.size()));
    const SparseSelection back = c.decode_selection(p.data(), p.size(), 5000);
    EXPECT_EQ(back.indices, sel.indices);
    const std::vector<float> dense = decode(c, p, 5000);
    ASSERT_EQ(back.values.size(), sel.values.size());
    std::vector<float> scattered(5000, 0.0f);
    for (size_t j = 0; j < back.indices.size(); ++j) {
      scattered[static_cast<size_t>(back.indices[j])] = back.values[j];
      if (values == ValueCoding::kF32) {
        EXPECT_EQ(back.values[j], sel.values[j]);
      }
    }
    EXPECT_EQ(scattered, dense);
  }
}

TEST(DgcTopK, DecodesPayloadsOfAnyDensity) {
  // A warm-up sends denser payloads than the final density: the receiver still decodes them.
  const auto x = gaussian(5000, 3);
  const Bytes dense = encode(DgcTopK(0.25, ValueCoding::kF32), x);
  DgcTopK sparse(0.001, ValueCoding::kF32);
  const auto y = decode(sparse, dense, 5000);
  int64_t nonzero = 0;
  for (float v : y) nonzero += v != 0.0f;
  EXPECT_GT(nonzero, 1000);
  EXPECT_LE(nonzero, 1250);
}

}  // namespace
}  // namespace terse

#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "terse/core/check.h"
#include "terse/core/dtype.h"
#include "terse/core/macros.h"
#include "terse/kernels/quant_avx2.h"
#include "terse/kernels/quant_code.h"

namespace terse {

// The 8-bit "dynamic tree" quantization map of bitsandbytes (Dettmers et al., ICLR 2022,
// "8-bit Optimizers via Block-wise Quantization"; bnb `functional.create_dynamic_map(signed,
// max_exponent_bits=7, total_bits=8)`, spec optimizers.md §10): for i = 0..6 the midpoints of
// linspace(0.1, 1, k + 1), k = 2^i (signed, both signs) or 2^(i+1) (unsigned), scaled by
// 10^(i-6); then 0 and 1.0; sorted. Signed: 127 negative codes (most negative -0.99296875),
// 0 at index 127, 128 positive codes ending at 1.0. Unsigned: 0 at index 0 ... 1.0 at 255.
//
// The tables are the bits of bnb's maps as torch 2.11 computes them (create_dynamic_map run in
// f32 on a CPU); the formula evaluated with scalar f32 arithmetic lands within 2 ulp of them
// (torch's vectorised linspace rounds differently), which tests/unit/optim/dynamic_map_test.cc
// checks.
//
// quantize(x) returns the nearest code to x (x already divided by the block's absmax): the
// number of the 255 midpoints between adjacent codes that are < x, so a value exactly on a
// midpoint takes the lower code (bnb's `quantize_2D` binary-searches the sorted table and
// compares with the midpoint; on an exact tie it keeps its even-indexed pivot). NaN gives code
// 0. The signed map keeps the sign of negative values as bnb does: a value with the sign bit set
// (including -0.0) whose nearest code is +0 takes the smallest negative code instead. The rule
// is dynamic_map_code (quant_code.h) over search_tree(), which the GPU step runs too; the CPU's
// block loop reads the same codes from a table built from it (quantize_scaled).
class DynamicMap {
 public:
  static constexpr int kCodes = 256;

  static const DynamicMap& signed_map() {
    static const DynamicMap m(true);
    return m;
  }
  static const DynamicMap& unsigned_map() {
    static const DynamicMap m(false);
    return m;
  }

  bool is_signed() const { return signed_; }
  // Index of the code 0.0 (127 signed, 0 unsigned): what an all-zero block is stored as.
  uint8_t zero_code() const { return zero_; }
  float value(uint8_t c) const { return code_[c]; }
  const float* codes() const { return code_; }
  // The 255 midpoints between adjacent codes in Eytzinger (breadth-first) order, at [1, 256);
  // [0] is unused (0): the tree dynamic_map_code searches.
  const float* search_tree() const { return tree_; }
  // bucket_map_code's tables (quant_code.h): per sign and bucket the count of midpoints below the
  // bucket's lowest value (the positive buckets first), and the midpoints in order, +inf at 255.
  const uint8_t* bucket_base() const { return base_; }
  const float* sorted_midpoints() const { return mid_; }
  // Largest distance between adjacent codes (the round-trip error bound is half of it).
  float max_gap() const {
    float gap = 0;
    for (int k = 0; k + 1 < kCodes; ++k) gap = std::max(gap, code_[k + 1] - code_[k]);
    return gap;
  }

  uint8_t quantize(float x) const { return dynamic_map_code(tree_, x, signed_, zero_); }

  // out[i] = quantize(x[i] * scale) for i < n: one independent load per element (a 512 KiB
  // table) and integer compares, where quantize() chains eight loads. fine_[k] holds the code c
  // of the lowest float whose top 17 bits are k and, from bit 16, the largest `low` that still
  // has code c: a 17-bit bucket holds at most one midpoint (the sign rule only merges codes), so
  // its codes are c and c + 1. `low` is the other 15 bits, flipped for a negative x so that it
  // grows with x. The table is built from quantize(), so the codes are the same (c + 1 taken
  // in 8 bits, which gives the NaNs in the bucket of +inf code 0). `simd`: the AVX2 loop where
  // the CPU has it (false: the portable loop, for tests).
  void quantize_scaled(const float* __restrict x, int64_t n, float scale, uint8_t* __restrict out,
                       bool simd = true) const {
#if defined(__x86_64__)
    if (simd && quant_avx2::has_avx2()) {
      quant_avx2::quantize(fine_, x, n, scale, out);
      return;
    }
#else
    (void)simd;
#endif
    for (int64_t i = 0; i < n; ++i) out[i] = fine_code(fine_, x[i] * scale);
  }

  // quantize_scaled's rule for one value (also the AVX2 loop's tail).
  static TERSE_FORCEINLINE uint8_t fine_code(const uint32_t* fine, float x) {
    const uint32_t bits = float_to_bits(x);
    const uint32_t e = fine[bits >> 15];
    const uint32_t low = (bits ^ (0u - (bits >> 31))) & 0x7fffu;
    return static_cast<uint8_t>((e & 0xffu) + (low > (e >> 16) ? 1u : 0u));
  }

 private:
  explicit DynamicMap(bool is_signed) : signed_(is_signed) {
    const uint32_t* bits = is_signed ? kSignedBits : kUnsignedBits;
    for (int k = 0; k < kCodes; ++k) code_[k] = bits_to_float(bits[k]);
    for (int k = 0; k + 1 < kCodes; ++k) mid_[k] = (code_[k] + code_[k + 1]) * 0.5f;
    mid_[kCodes - 1] = bits_to_float(0x7f800000u);
    zero_ = static_cast<uint8_t>(std::find(code_, code_ + kCodes, 0.0f) - code_);
    // Node i at depth d (2^d <= i < 2^(d+1)) of the perfect 8-level tree is the midpoint of
    // in-order rank (2(i - 2^d) + 1) * 2^(7-d) - 1: the root is mid_[127], the leaves the even
    // ranks.
    for (int i = 1; i < kCodes; ++i) {
      int d = 0;
      while ((i >> (d + 1)) != 0) ++d;
      tree_[i] = mid_[(2 * (i - (1 << d)) + 1) * (1 << (7 - d)) - 1];
    }
    for (uint32_t k = 0; k < kFine; ++k) {
      const uint32_t flip = (k >> 16) != 0 ? 0x7fffu : 0u;
      const auto code = [&](uint32_t low) {
        return quantize(bits_to_float(k << 15 | (low ^ flip)));
      };
      const uint32_t c = code(0);
      uint32_t below = 0x7fff;  // the largest low with code c
      if (code(0x7fff) != c) {
        // c + 1 in 8 bits: in the bucket of +inf (code 255) the NaNs above it take code 0.
        TERSE_CHECK(code(0x7fff) == ((c + 1) & 0xffu), Error,
                    "DynamicMap: two midpoints in bucket ", k);
        below = 0;
        for (uint32_t hi = 0x7fff; hi - below > 1;) {
          const uint32_t m = (below + hi) / 2;
          (code(m) == c ? below : hi) = m;
        }
      }
      fine_[k] = c | below << 16;
    }
    build_buckets();
  }

  // bucket_base(): a bucket's lowest and highest values are its ends in bits, ordered by value
  // (for a negative sign the largest magnitude is the lowest value); it must hold one midpoint
  // at most.
  void build_buckets() {
    for (uint32_t s = 0; s < 2; ++s) {
      for (uint32_t k = 0; k < kQuantBucketsPerSign; ++k) {
        const uint32_t first = k == 0 ? 0u : (kQuantBucketLowExp << 23) + ((k - 1) << 16);
        const uint32_t last = k == 0 ? (kQuantBucketLowExp << 23) - 1 : first + 0xffffu;
        const float lo = bits_to_float((s << 31) | (s != 0 ? last : first));
        const float hi = bits_to_float((s << 31) | (s != 0 ? first : last));
        const uint32_t c = midpoints_below(tree_, lo);
        const uint32_t d = midpoints_below(tree_, hi);
        // hi itself counts the midpoints below it; one equal to hi is still in the bucket.
        const uint32_t in = d - c + (d < kCodes - 1 && mid_[d] == hi ? 1u : 0u);
        TERSE_CHECK(in <= 1, Error, "DynamicMap: ", in, " midpoints in bucket ", k, " of sign ", s);
        base_[s * kQuantBucketsPerSign + k] = static_cast<uint8_t>(c);
      }
    }
  }

  static constexpr uint32_t kSignedBits[kCodes] = {
      0xbf7e3333, 0xbf7a999a, 0xbf770000, 0xbf736666, 0xbf6fcccd, 0xbf6c3333, 0xbf68999a,
      0xbf650000, 0xbf616666, 0xbf5dcccd, 0xbf5a3333, 0xbf56999a, 0xbf530000, 0xbf4f6666,
      0xbf4bcccd, 0xbf483333, 0xbf44999a, 0xbf410000, 0xbf3d6666, 0xbf39cccd, 0xbf363334,
      0xbf32999a, 0xbf2f0000, 0xbf2b6666, 0xbf27cccd, 0xbf243334, 0xbf20999a, 0xbf1d0000,
      0xbf196666, 0xbf15cccd, 0xbf123334, 0xbf0e999a, 0xbf0b0000, 0xbf076666, 0xbf03cccc,
      0xbf003333, 0xbef93332, 0xbef20000, 0xbeeacccc, 0xbee3999a, 0xbedc6666, 0xbed53333,
      0xbece0000, 0xbec6cccc, 0xbebf999a, 0xbeb86666, 0xbeb13333, 0xbeaa0000, 0xbea2cccc,
      0xbe9b999a, 0xbe946666, 0xbe8d3334, 0xbe860000, 0xbe7d9999, 0xbe6f3333, 0xbe60cccd,
      0xbe526666, 0xbe440000, 0xbe35999a, 0xbe273333, 0xbe18cccd, 0xbe0a6666, 0xbdf80000,
      0xbddb3334, 0xbdc9eb85, 0xbdc428f7, 0xbdbe6667, 0xbdb8a3d7, 0xbdb2e148, 0xbdad1eb8,
      0xbda75c2a, 0xbda1999a, 0xbd9bd70a, 0xbd96147b, 0xbd9051eb, 0xbd8a8f5d, 0xbd84cccd,
      0xbd7e147b, 0xbd728f5d, 0xbd670a3d, 0xbd5b851f, 0xbd500000, 0xbd447ae1, 0xbd38f5c3,
      0xbd2d70a3, 0xbd21eb85, 0xbd166667, 0xbd0ae148, 0xbcfeb852, 0xbce7ae15, 0xbcd0a3d7,
      0xbcb9999a, 0xbca28f5d, 0xbc8b851f, 0xbc68f5c3, 0xbc3ae148, 0xbc1f3b64, 0xbc160418,
      0xbc0ccccd, 0xbc039581, 0xbbf4bc6a, 0xbbe24dd3, 0xbbcfdf3b, 0xbbbd70a4, 0xbbab020d,
      0xbb989374, 0xbb8624dd, 0xbb676c8a, 0xbb428f5c, 0xbb1db22d, 0xbaf1a9fc, 0xbaa7ef9d,
      0xba7765ff, 0xba59e83e, 0xba3c6a80, 0xba1eecc1, 0xba016f01, 0xb9c7e283, 0xb98ce705,
      0xb923d70b, 0xb8ba1f4b, 0xb88aefb3, 0xb8378034, 0xb7b24206, 0xb70205ff, 0xb65a1a94,
      0xb513a3b7, 0x00000000, 0x3513a3b7, 0x365a1a94, 0x370205ff, 0x37b24206, 0x38378034,
      0x388aefb3, 0x38ba1f4b, 0x3923d70b, 0x398ce705, 0x39c7e283, 0x3a016f01, 0x3a1eecc1,
      0x3a3c6a80, 0x3a59e83e, 0x3a7765ff, 0x3aa7ef9d, 0x3af1a9fc, 0x3b1db22d, 0x3b428f5c,
      0x3b676c8a, 0x3b8624dd, 0x3b989374, 0x3bab020d, 0x3bbd70a4, 0x3bcfdf3b, 0x3be24dd3,
      0x3bf4bc6a, 0x3c039581, 0x3c0ccccd, 0x3c160418, 0x3c1f3b64, 0x3c3ae148, 0x3c68f5c3,
      0x3c8b851f, 0x3ca28f5d, 0x3cb9999a, 0x3cd0a3d7, 0x3ce7ae15, 0x3cfeb852, 0x3d0ae148,
      0x3d166667, 0x3d21eb85, 0x3d2d70a3, 0x3d38f5c3, 0x3d447ae1, 0x3d500000, 0x3d5b851f,
      0x3d670a3d, 0x3d728f5d, 0x3d7e147b, 0x3d84cccd, 0x3d8a8f5d, 0x3d9051eb, 0x3d96147b,
      0x3d9bd70a, 0x3da1999a, 0x3da75c2a, 0x3dad1eb8, 0x3db2e148, 0x3db8a3d7, 0x3dbe6667,
      0x3dc428f7, 0x3dc9eb85, 0x3ddb3334, 0x3df80000, 0x3e0a6666, 0x3e18cccd, 0x3e273333,
      0x3e35999a, 0x3e440000, 0x3e526666, 0x3e60cccd, 0x3e6f3333, 0x3e7d9999, 0x3e860000,
      0x3e8d3334, 0x3e946666, 0x3e9b999a, 0x3ea2cccc, 0x3eaa0000, 0x3eb13333, 0x3eb86666,
      0x3ebf999a, 0x3ec6cccc, 0x3ece0000, 0x3ed53333, 0x3edc6666, 0x3ee3999a, 0x3eeacccc,
      0x3ef20000, 0x3ef93332, 0x3f003333, 0x3f03cccc, 0x3f076666, 0x3f0b0000, 0x3f0e999a,
      0x3f123334, 0x3f15cccd, 0x3f196666, 0x3f1d0000, 0x3f20999a, 0x3f243334, 0x3f27cccd,
      0x3f2b6666, 0x3f2f0000, 0x3f32999a, 0x3f363334, 0x3f39cccd, 0x3f3d6666, 0x3f410000,
      0x3f44999a, 0x3f483333, 0x3f4bcccd, 0x3f4f6666, 0x3f530000, 0x3f56999a, 0x3f5a3333,
      0x3f5dcccd, 0x3f616666, 0x3f650000, 0x3f68999a, 0x3f6c3333, 0x3f6fcccd, 0x3f736666,
      0x3f770000, 0x3f7a999a, 0x3f7e3333, 0x3f800000,
  };
  static constexpr uint32_t kUnsignedBits[kCodes] = {
      0x00000000, 0x34ae7baa, 0x35500998, 0x360e9b38, 0x3692ccf6, 0x36de4c51, 0x3714e5d5,
      0x3783126e, 0x37e171a0, 0x381fe868, 0x384f1800, 0x387e479a, 0x3896bb99, 0x38ae5364,
      0x38c5eb31, 0x3906594b, 0x394154ca, 0x397c5049, 0x399ba5e4, 0x39b923a2, 0x39d6a163,
      0x39f41f22, 0x3a08ce71, 0x3a178d50, 0x3a264c30, 0x3a350b10, 0x3a43c9ef, 0x3a5288d0,
      0x3a6147af, 0x3a70068e, 0x3a7ec56e, 0x3a958106, 0x3aba5e35, 0x3adf3b64, 0x3b020c4a,
      0x3b147ae1, 0x3b26e978, 0x3b395810, 0x3b4bc6a7, 0x3b5e3540, 0x3b70a3d7, 0x3b818937,
      0x3b8ac082, 0x3b93f7cf, 0x3b9d2f1a, 0x3ba66666, 0x3baf9db2, 0x3bb8d4fd, 0x3bc20c4a,
      0x3bcb4395, 0x3bd47ae1, 0x3bddb22e, 0x3be6e978, 0x3bf020c5, 0x3bf9580f, 0x3c0147ae,
      0x3c05e354, 0x3c0a7ef9, 0x3c0f1aa0, 0x3c13b645, 0x3c1851eb, 0x3c1ced92, 0x3c218937,
      0x3c2f5c2a, 0x3c466667, 0x3c5d70a3, 0x3c747ae2, 0x3c85c28f, 0x3c9147af, 0x3c9ccccd,
      0x3ca851eb, 0x3cb3d70b, 0x3cbf5c29, 0x3ccae147, 0x3cd66667, 0x3ce1eb87, 0x3ced70a3,
      0x3cf8f5c3, 0x3d023d70, 0x3d080000, 0x3d0dc28f, 0x3d13851f, 0x3d1947af, 0x3d1f0a3d,
      0x3d24cccd, 0x3d2a8f5c, 0x3d3051eb, 0x3d36147b, 0x3d3bd70a, 0x3d41999a, 0x3d475c28,
      0x3d4d1eb8, 0x3d52e147, 0x3d58a3d7, 0x3d5e6667, 0x3d6428f7, 0x3d69eb87, 0x3d6fae15,
      0x3d7570a3, 0x3d7b3333, 0x3d807ae2, 0x3d835c2a, 0x3d863d71, 0x3d891eb8, 0x3d8c0000,
      0x3d8ee148, 0x3d91c290, 0x3d94a3d7, 0x3d97851f, 0x3d9a6667, 0x3d9d47af, 0x3da028f6,
      0x3da30a3e, 0x3da5eb85, 0x3da8cccd, 0x3dabae15, 0x3dae8f5c, 0x3db170a4, 0x3db451eb,
      0x3db73333, 0x3dba147b, 0x3dbcf5c3, 0x3dbfd70b, 0x3dc2b852, 0x3dc5999a, 0x3dc87ae2,
      0x3dcb5c29, 0x3dd40000, 0x3de26666, 0x3df0cccd, 0x3dff3333, 0x3e06cccc, 0x3e0e0000,
      0x3e153334, 0x3e1c6666, 0x3e23999a, 0x3e2acccc, 0x3e320000, 0x3e393334, 0x3e406666,
      0x3e47999a, 0x3e4ecccc, 0x3e560000, 0x3e5d3334, 0x3e646666, 0x3e6b999a, 0x3e72cccc,
      0x3e7a0000, 0x3e809999, 0x3e843333, 0x3e87cccd, 0x3e8b6666, 0x3e8f0000, 0x3e92999a,
      0x3e963333, 0x3e99cccc, 0x3e9d6666, 0x3ea10000, 0x3ea4999a, 0x3ea83333, 0x3eabcccc,
      0x3eaf6666, 0x3eb30000, 0x3eb6999a, 0x3eba3333, 0x3ebdcccc, 0x3ec16666, 0x3ec50000,
      0x3ec8999a, 0x3ecc3333, 0x3ecfcccc, 0x3ed36666, 0x3ed70000, 0x3eda999a, 0x3ede3333,
      0x3ee1cccc, 0x3ee56666, 0x3ee90000, 0x3eec999a, 0x3ef03333, 0x3ef3cccc, 0x3ef76666,
      0x3efb0000, 0x3efe9999, 0x3f01199a, 0x3f02e666, 0x3f04b333, 0x3f068000, 0x3f084ccc,
      0x3f0a199a, 0x3f0be666, 0x3f0db334, 0x3f0f8000, 0x3f114ccd, 0x3f13199a, 0x3f14e666,
      0x3f16b334, 0x3f188000, 0x3f1a4ccd, 0x3f1c199a, 0x3f1de666, 0x3f1fb334, 0x3f218000,
      0x3f234ccd, 0x3f25199a, 0x3f26e666, 0x3f28b334, 0x3f2a8000, 0x3f2c4ccd, 0x3f2e199a,
      0x3f2fe666, 0x3f31b334, 0x3f338000, 0x3f354ccd, 0x3f37199a, 0x3f38e666, 0x3f3ab334,
      0x3f3c8000, 0x3f3e4ccd, 0x3f40199a, 0x3f41e666, 0x3f43b334, 0x3f458000, 0x3f474ccc,
      0x3f49199a, 0x3f4ae666, 0x3f4cb334, 0x3f4e8000, 0x3f504ccc, 0x3f52199a, 0x3f53e666,
      0x3f55b334, 0x3f578000, 0x3f594ccc, 0x3f5b199a, 0x3f5ce666, 0x3f5eb334, 0x3f608000,
      0x3f624ccc, 0x3f64199a, 0x3f65e666, 0x3f67b334, 0x3f698000, 0x3f6b4ccc, 0x3f6d199a,
      0x3f6ee666, 0x3f70b334, 0x3f728000, 0x3f744ccc, 0x3f76199a, 0x3f77e666, 0x3f79b334,
      0x3f7b8000, 0x3f7d4ccc, 0x3f7f199a, 0x3f800000,
  };

  bool signed_;
  uint8_t zero_ = 0;
  float code_[kCodes] = {};
  float tree_[kCodes] = {};
  static constexpr uint32_t kFine = 1u << 17;
  uint32_t fine_[kFine] = {};
  uint8_t base_[2 * kQuantBucketsPerSign] = {};
  float mid_[kCodes] = {};
};

}  // namespace terse

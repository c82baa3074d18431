#pragma once

// Deterministic per-rank inputs and a single-process reference for the collective tests.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "terse/comm/reduce_op.h"
#include "terse/core/dtype.h"
#include "terse/core/philox.h"
#include "terse/core/tensor_view.h"

namespace terse::testing {

using Bytes = std::vector<uint8_t>;

inline const std::vector<DType>& all_dtypes() {
  static const std::vector<DType> kAll = {DType::kF32, DType::kBF16, DType::kF16, DType::kF64,
                                          DType::kI32, DType::kI64,  DType::kU8};
  return kAll;
}

// `n` elements of `dtype` for (salt, rank): the same on every rank and every run. By default
// floats span 2^-11 to 2^10 in magnitude, so sums round and any reduction order other than rank
// order changes the bits.
// With `exact`, floats are multiples of 1/4 in [-4, 4]: sums over up to 4 ranks are exact in
// every float dtype, so any reduction order (MPI picks its own) gives the same bits.
inline Bytes make_input(DType dtype, int rank, int64_t n, uint64_t salt, bool exact = false) {
  PhiloxStream rng(salt * 1000003u + static_cast<uint64_t>(dtype), static_cast<uint64_t>(rank));
  Bytes b(static_cast<size_t>(n) * dtype_size(dtype));
  for (int64_t i = 0; i < n; ++i) {
    const float f =
        exact ? static_cast<float>(static_cast<int>(rng.below(33)) - 16) * 0.25f
              : (rng.uniform() - 0.5f) * std::ldexp(1.0f, static_cast<int>(rng.below(21)) - 10);
    switch (dtype) {
      case DType::kF32:
        reinterpret_cast<float*>(b.data())[i] = f;
        break;
      case DType::kBF16:
        reinterpret_cast<BFloat16*>(b.data())[i] = to_bfloat16(f);
        break;
      case DType::kF16:
        reinterpret_cast<Half*>(b.data())[i] = to_half(f);
        break;
      case DType::kF64:
        reinterpret_cast<double*>(b.data())[i] = static_cast<double>(f) / (exact ? 1.0 : 3.0);
        break;
      case DType::kI32:
        reinterpret_cast<int32_t*>(b.data())[i] =
            static_cast<int32_t>(rng.below(2000001)) - 1000000;
        break;
      case DType::kI64:
        reinterpret_cast<int64_t*>(b.data())[i] =
            static_cast<int64_t>(rng.below(uint64_t{1} << 50)) - (int64_t{1} << 49);
        break;
      case DType::kU8:
        b[static_cast<size_t>(i)] = static_cast<uint8_t>(rng.next_u32());
        break;
    }
  }
  return b;
}

template <typename T, typename M>
void reference_reduce_typed(const std::vector<Bytes>& in, Bytes* out, int64_t n, ReduceOp op,
                            M (*load)(T), T (*store)(M)) {
  const T* first = reinterpret_cast<const T*>(in[0].data());
  T* o = reinterpret_cast<T*>(out->data());
  for (int64_t i = 0; i < n; ++i) {
    M acc = load(first[i]);
    for (size_t r = 1; r < in.size(); ++r) {
      const M x = load(reinterpret_cast<const T*>(in[r].data())[i]);
      if (op == ReduceOp::kSum) acc = static_cast<M>(acc + x);
      if (op == ReduceOp::kMax) acc = x > acc ? x : acc;
      if (op == ReduceOp::kMin) acc = x < acc ? x : acc;
    }
    o[i] = store(acc);
  }
}

// Rank 0, 1, 2, ... in turn; bf16/f16 in f32, rounded once; integers wrap like the hardware.
inline Bytes reference_reduce(const std::vector<Bytes>& in, DType dtype, int64_t n, ReduceOp op) {
  Bytes out(static_cast<size_t>(n) * dtype_size(dtype));
  switch (dtype) {
    case DType::kF32:
      reference_reduce_typed<float, float>(
          in, &out, n, op, +[](float x) { return x; }, +[](float x) { return x; });
      break;
    case DType::kF64:
      reference_reduce_typed<double, double>(
          in, &out, n, op, +[](double x) { return x; }, +[](double x) { return x; });
      break;
    case DType::kBF16:
      reference_reduce_typed<BFloat16, float>(
          in, &out, n, op, +[](BFloat16 x) { return to_float(x); },
          +[](float x) { return to_bfloat16(x); });
      break;
    case DType::kF16:
      reference_reduce_typed<Half, float>(
          in, &out, n, op, +[](Half x) { return to_float(x); },
          +[](float x) { return to_half(x); });
      break;
    case DType::kI32:
      // Inputs are below 2^20 in magnitude: no overflow for up to 2^11 ranks.
      reference_reduce_typed<int32_t, int64_t>(
          in, &out, n, op, +[](int32_t x) { return int64_t{x}; },
          +[](int64_t x) { return static_cast<int32_t>(x); });
      break;
    case DType::kI64:
      reference_reduce_typed<int64_t, int64_t>(
          in, &out, n, op, +[](int64_t x) { return x; }, +[](int64_t x) { return x; });
      break;
    case DType::kU8:
      reference_reduce_typed<uint8_t, uint32_t>(
          in, &out, n, op, +[](uint8_t x) { return uint32_t{x}; },
          +[](uint32_t x) { return static_cast<uint8_t>(x & 0xffu); });
      break;
  }
  return out;
}

inline TensorView view_of(Bytes& b, DType dtype) {
  return TensorView(b.empty() ? nullptr : b.data(),
                    static_cast<int64_t>(b.size() / dtype_size(dtype)), dtype);
}

// Throws (so a rank thread reports it) naming the first differing byte.
inline void require_equal(const Bytes& got, const Bytes& want, const std::string& what) {
  if (got.size() != want.size()) {
    throw std::runtime_error(what + ": size " + std::to_string(got.size()) + " != expected " +
                             std::to_string(want.size()));
  }
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i]) {
      throw std::runtime_error(what + ": byte " + std::to_string(i) + " is " +
                               std::to_string(got[i]) + ", expected " + std::to_string(want[i]));
    }
  }
}

}  // namespace terse::testing

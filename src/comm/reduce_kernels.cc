#include "reduce_kernels.h"

#include <type_traits>

#include "terse/core/check.h"

namespace terse::detail {

namespace {

// The arithmetic type a storage type is reduced in.
template <typename T>
struct MathOf {
  using type = T;
};
template <>
struct MathOf<BFloat16> {
  using type = float;
};
template <>
struct MathOf<Half> {
  using type = float;
};

template <typename T>
typename MathOf<T>::type load(const T* p, int64_t i) {
  if constexpr (std::is_same_v<T, BFloat16> || std::is_same_v<T, Half>) {
    return load_as_float(p, i);
  } else {
    return p[i];
  }
}

template <typename T>
void store(T* p, int64_t i, typename MathOf<T>::type v) {
  if constexpr (std::is_same_v<T, BFloat16> || std::is_same_v<T, Half>) {
    store_from_float(p, i, v);
  } else {
    p[i] = v;
  }
}

template <typename M>
M apply(ReduceOp op, M acc, M x) {
  switch (op) {
    case ReduceOp::kSum:
      if constexpr (std::is_integral_v<M>) {
        // Wrap-around through the unsigned type: defined behaviour, same bits as MPI_SUM.
        using U = std::make_unsigned_t<M>;
        return static_cast<M>(static_cast<U>(acc) + static_cast<U>(x));
      } else {
        return acc + x;
      }
    case ReduceOp::kMax:
      return x > acc ? x : acc;
    case ReduceOp::kMin:
      return x < acc ? x : acc;
  }
  return acc;
}

template <typename T>
void reduce_typed(const std::vector<const void*>& in, void* out, int64_t n, ReduceOp op) {
  T* o = static_cast<T*>(out);
  const size_t k = in.size();
  // Blocked so the f32 accumulators of a block stay in cache and `out` may alias an input.
  constexpr int64_t kBlock = 1024;
  using M = typename MathOf<T>::type;
  M acc[kBlock];
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t m = n - b < kBlock ? n - b : kBlock;
    const T* first = static_cast<const T*>(in[0]) + b;
    for (int64_t i = 0; i < m; ++i) acc[i] = load(first, i);
    for (size_t r = 1; r < k; ++r) {
      const T* p = static_cast<const T*>(in[r]) + b;
      for (int64_t i = 0; i < m; ++i) acc[i] = apply<M>(op, acc[i], load(p, i));
    }
    for (int64_t i = 0; i < m; ++i) store(o + b, i, acc[i]);
  }
}

template <typename T>
void combine_typed(const void* in, void* inout, int64_t n, ReduceOp op) {
  const T* a = static_cast<const T*>(in);
  T* b = static_cast<T*>(inout);
  using M = typename MathOf<T>::type;
  for (int64_t i = 0; i < n; ++i) store(b, i, apply<M>(op, load(a, i), load(b, i)));
}

template <typename Fn>
void dispatch_all(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kF32:
      return fn(float{});
    case DType::kBF16:
      return fn(BFloat16{});
    case DType::kF16:
      return fn(Half{});
    case DType::kF64:
      return fn(double{});
    case DType::kI32:
      return fn(int32_t{});
    case DType::kI64:
      return fn(int64_t{});
    case DType::kU8:
      return fn(uint8_t{});
  }
  TERSE_THROW(InvalidArgument, "cannot reduce dtype code ", static_cast<int>(dtype),
              "; use one of f32, bf16, f16, f64, i32, i64, u8");
}

}  // namespace

void reduce_in_order(const std::vector<const void*>& in, void* out, int64_t n, DType dtype,
                     ReduceOp op) {
  TERSE_CHECK(!in.empty(), InvalidArgument, "reduce_in_order needs at least one input, got 0");
  if (n == 0) return;
  dispatch_all(dtype, [&](auto tag) { reduce_typed<decltype(tag)>(in, out, n, op); });
}

void combine_pair(const void* in, void* inout, int64_t n, DType dtype, ReduceOp op) {
  dispatch_all(dtype, [&](auto tag) { combine_typed<decltype(tag)>(in, inout, n, op); });
}

}  // namespace terse::detail

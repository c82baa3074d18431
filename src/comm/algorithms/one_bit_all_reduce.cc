#include "terse/comm/algorithms/one_bit_all_reduce.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "terse/core/check.h"

namespace terse {

namespace {

// Sentinels a rank sends instead of its worker scale (a real scale is finite and >= 0).
constexpr float kFlagBadArguments = -1.0f;
constexpr float kFlagNonFinite = -2.0f;
// Sizes above this cannot be real buffers and would overflow the byte counts.
constexpr int64_t kMaxNumel = int64_t{1} << 48;
constexpr int kLanes = 8;

// ||v||^2 in the documented order: exact double squares, 8 lanes by index, pairwise combine.
// `v` holds `count` elements, count a multiple of 8.
double lanes_combine(const double* l) {
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

double sum_squares(const float* v, int64_t count) {
  double lanes[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < count; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) {
      const double x = v[i + k];
      lanes[k] += x * x;
    }
  }
  return lanes_combine(lanes);
}

// The scale ||v|| / sqrt(count), rounded once to f32.
float scale_of(double sum_sq, int64_t count) {
  return static_cast<float>(std::sqrt(sum_sq / static_cast<double>(count)));
}

// Eight elements x (finite) -> their sign byte (bit 7 - k set iff x[k] >= 0, -0 included) and
// e[k] = x[k] - s sgn(x[k]), as x - (+-s): x - (-s) is exactly x + s. The sign comes from the
// bits and -s from flipping s's sign bit (s >= 0), so nothing branches on random signs and GCC
// vectorises it without -fno-trapping-math.
inline uint8_t encode8(const float* x, uint32_t s_bits, float* e) {
  uint32_t neg[8];
  for (int k = 0; k < 8; ++k) {
    uint32_t u;
    std::memcpy(&u, x + k, sizeof u);
    neg[k] = (u >> 31) & static_cast<uint32_t>(u != 0x80000000u);
    const uint32_t sv_bits = s_bits | (neg[k] << 31);
    float sv;
    std::memcpy(&sv, &sv_bits, sizeof sv);
    e[k] = x[k] - sv;
  }
  unsigned byte = 0;
  for (int k = 0; k < 8; ++k) byte |= (1u - neg[k]) << (7 - k);
  return static_cast<uint8_t>(byte);
}

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// kSigns[b][k] = +1 when bit 7 - k of byte b is set (MSB first), else -1.
struct SignTable {
  float v[256][8];
  SignTable() {
    for (int b = 0; b < 256; ++b) {
      for (int k = 0; k < 8; ++k) v[b][k] = ((b >> (7 - k)) & 1) ? 1.0f : -1.0f;
    }
  }
};
const SignTable& sign_table() {
  static const SignTable t;
  return t;
}

std::string check_input(const TensorView& inout, int64_t numel) {
  if (inout.dtype != DType::kF32) {
    return detail::str_cat("inout holds ", dtype_name(inout.dtype), "; pass an f32 buffer");
  }
  if (!inout.device.is_cpu()) {
    return detail::str_cat("inout is on ", inout.device.str(), "; pass a CPU buffer");
  }
  if (inout.numel != numel) {
    return detail::str_cat("inout has ", inout.numel,
                           " elements but this OneBitAllReduce was built for ", numel,
                           "; pass the flat buffer it was constructed for");
  }
  if (inout.data == nullptr) {
    return "inout.data is null; pass an allocated buffer";
  }
  return std::string();
}

}  // namespace

int64_t one_bit_padded_numel(int64_t numel, int world_size) {
  TERSE_CHECK(numel > 0 && numel <= kMaxNumel, InvalidArgument,
              "OneBitAllReduce: numel must be in [1, 2^48], got ", numel,
              "; pass the element count of the flat buffer");
  TERSE_CHECK(world_size > 0, InvalidArgument, "OneBitAllReduce: world size must be > 0, got ",
              world_size, "; pass a valid communicator");
  const int64_t w = world_size;
  const int64_t divider = w * (w * 8 / std::gcd(w, int64_t{8}));
  return (numel + divider - 1) / divider * divider;
}

uint64_t one_bit_all_reduce_bytes(int64_t numel, int world_size) {
  const int64_t padded = one_bit_padded_numel(numel, world_size);
  if (world_size <= 1) return 0;
  const uint64_t w = static_cast<uint64_t>(world_size);
  const uint64_t chunk_bytes = static_cast<uint64_t>(padded) / (8 * w);
  return 2 * (w - 1) * chunk_bytes + 2 * (w - 1) * sizeof(float);
}

OneBitAllReduce::OneBitAllReduce(Communicator& comm, int64_t numel)
    : Algorithm(comm), numel_(numel), padded_(one_bit_padded_numel(numel, comm.size())) {
  const size_t w = static_cast<size_t>(comm.size());
  const size_t n = static_cast<size_t>(padded_);
  worker_error_.assign(n, 0.0f);
  server_error_.assign(n / w, 0.0f);
  signs_.assign(n / 8, 0);
  received_.assign(n / 8, 0);
  server_sum_.assign(n / w, 0.0f);
  server_signs_.assign(n / (8 * w), 0);
  gathered_signs_.assign(n / 8, 0);
  worker_scales_.assign(w, 0.0f);
  server_scales_.assign(w, 0.0f);
  sign_table();
}

void OneBitAllReduce::reset_errors() {
  std::fill(worker_error_.begin(), worker_error_.end(), 0.0f);
  std::fill(server_error_.begin(), server_error_.end(), 0.0f);
}

OneBitAllReduceReport OneBitAllReduce::all_reduce(TensorView inout) {
  Communicator& c = comm();
  const int w = c.size();
  const int me = c.rank();
  const int64_t n = padded_;
  const int64_t chunk = n / w;  // elements of one server chunk
  const int64_t chunk_bytes = chunk / 8;
  const std::string arg_error = check_input(inout, numel_);
  const float* m = arg_error.empty() ? inout.as<float>() : nullptr;
  float* e = worker_error_.data();

  // 1. ||m + e_w||^2 without touching any state: a non-finite input leaves everything unchanged.
  // double squares of finite floats cannot overflow, so the sum is finite iff every x is.
  float my_scale = kFlagBadArguments;
  if (arg_error.empty()) {
    double lanes[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
    const int64_t full = numel_ / kLanes * kLanes;
    int64_t i = 0;
    for (; i < full; i += kLanes) {
      for (int k = 0; k < kLanes; ++k) {
        const double x = m[i + k] + e[i + k];
        lanes[k] += x * x;
      }
    }
    for (; i < n; ++i) {
      const double x = (i < numel_ ? m[i] : 0.0f) + e[i];
      lanes[i % kLanes] += x * x;
    }
    const double ss = lanes_combine(lanes);
    my_scale = std::isfinite(ss) ? scale_of(ss, n) : kFlagNonFinite;
  }
  c.all_gather(TensorView::of(&my_scale, 1), TensorView::of(worker_scales_.data(), w));

  TERSE_CHECK(arg_error.empty(), InvalidArgument, "OneBitAllReduce on rank ", me, " of ", w, ": ",
              arg_error);
  std::string non_finite;
  for (int r = 0; r < w; ++r) {
    const float s = worker_scales_[static_cast<size_t>(r)];
    TERSE_CHECK(s != kFlagBadArguments, CommError, "OneBitAllReduce on rank ", me, ": rank ", r,
                " passed invalid arguments (its own error says which); fix that rank's call");
    if (s == kFlagNonFinite) non_finite += detail::str_cat(non_finite.empty() ? "" : ", ", r);
  }
  TERSE_CHECK(non_finite.empty(), NumericalError, "OneBitAllReduce on rank ", me,
              ": non-finite values (NaN or Inf) in the input, or in the input plus the worker "
              "error, on rank(s) ",
              non_finite,
              "; no input and no error was changed on any rank: skip this step (e.g. lower the "
              "loss scale or the learning rate) and call all_reduce again");
  for (int r = 0; r < w; ++r) {
    const float s = worker_scales_[static_cast<size_t>(r)];
    TERSE_CHECK(std::isfinite(s) && s >= 0.0f, CorruptData, "OneBitAllReduce on rank ", me,
                ": rank ", r, " sent worker scale ", s,
                " (must be finite and >= 0); the data was corrupted between ranks or rank ", r,
                " does not run this algorithm");
  }

  // 2. Worker: signs of x (MSB first), e_w <- x - s sgn(x).
  {
    const uint32_t s_bits = bits_of(worker_scales_[static_cast<size_t>(me)]);
    uint8_t* out = signs_.data();
    float x[kLanes];
    for (int64_t i = 0; i < n; i += kLanes) {
      if (i + kLanes <= numel_) {
        for (int k = 0; k < kLanes; ++k) x[k] = m[i + k] + e[i + k];
      } else {
        for (int k = 0; k < kLanes; ++k) x[k] = (i + k < numel_ ? m[i + k] : 0.0f) + e[i + k];
      }
      out[i / kLanes] = encode8(x, s_bits, e + i);
    }
  }
  c.all_to_all(TensorView::of(signs_.data(), n / 8), TensorView::of(received_.data(), n / 8));

  // 3. Server for chunk `me`: y = sum_j (s_w^j / W) unpack(bits_j) + e_s.
  const SignTable& table = sign_table();
  float* y = server_sum_.data();
  std::fill(server_sum_.begin(), server_sum_.end(), 0.0f);
  for (int j = 0; j < w; ++j) {
    const float cj = worker_scales_[static_cast<size_t>(j)] / static_cast<float>(w);
    const uint8_t* bits = received_.data() + static_cast<int64_t>(j) * chunk_bytes;
    for (int64_t b = 0; b < chunk_bytes; ++b) {
      const float* sg = table.v[bits[b]];
      float* yb = y + b * kLanes;
      for (int k = 0; k < kLanes; ++k) yb[k] += cj * sg[k];
    }
  }
  float* es = server_error_.data();
  for (int64_t i = 0; i < chunk; ++i) y[i] += es[i];
  const float s_s = scale_of(sum_squares(y, chunk), chunk);
  const uint32_t ss_bits = bits_of(s_s);
  for (int64_t b = 0; b < chunk_bytes; ++b) {
    server_signs_[static_cast<size_t>(b)] = encode8(y + b * kLanes, ss_bits, es + b * kLanes);
  }

  // 4. Every server's signs and scale; out[chunk j] = s_s^j unpack(bits of j).
  float my_server_scale = s_s;
  c.all_gather(TensorView::of(server_signs_.data(), chunk_bytes),
               TensorView::of(gathered_signs_.data(), n / 8));
  c.all_gather(TensorView::of(&my_server_scale, 1), TensorView::of(server_scales_.data(), w));
  for (int r = 0; r < w; ++r) {
    const float s = server_scales_[static_cast<size_t>(r)];
    TERSE_CHECK(std::isfinite(s) && s >= 0.0f, CorruptData, "OneBitAllReduce on rank ", me,
                ": rank ", r, " sent server scale ", s,
                " (must be finite and >= 0; a server sum that overflowed f32 gives Inf); the data "
                "was corrupted between ranks or rank ",
                r, " does not run this algorithm");
  }
  float* dst = inout.as<float>();
  for (int j = 0; j < w; ++j) {
    const float sj = server_scales_[static_cast<size_t>(j)];
    const int64_t begin = static_cast<int64_t>(j) * chunk;
    if (begin >= numel_) break;
    const int64_t end = std::min(begin + chunk, numel_);
    const int64_t full_end = begin + (end - begin) / kLanes * kLanes;
    int64_t i = begin;
    for (; i < full_end; i += kLanes) {
      const float* sg = table.v[gathered_signs_[static_cast<size_t>(i / kLanes)]];
      for (int k = 0; k < kLanes; ++k) dst[i + k] = sj * sg[k];
    }
    for (; i < end; ++i) {
      const float* sg = table.v[gathered_signs_[static_cast<size_t>(i / kLanes)]];
      dst[i] = sj * sg[i % kLanes];
    }
  }

  OneBitAllReduceReport rep;
  rep.path = "compressed";
  rep.collectives = 4;
  rep.bytes_sent = one_bit_all_reduce_bytes(numel_, w);
  rep.bytes_dense = ring_all_reduce_bytes(sizeof(float) * static_cast<uint64_t>(numel_), w);
  rep.payload_bytes = static_cast<uint64_t>(n / 8) + sizeof(float) +
                      static_cast<uint64_t>(chunk_bytes) + sizeof(float);
  return rep;
}

StateDict OneBitAllReduce::state_dict(const std::string& prefix) const {
  StateDict d;
  d.tensors[prefix + "worker_error"] =
      StateTensor::copy_of(TensorView::of(const_cast<float*>(worker_error_.data()),
                                          static_cast<int64_t>(worker_error_.size())),
                           {static_cast<int64_t>(worker_error_.size())});
  d.tensors[prefix + "server_error"] =
      StateTensor::copy_of(TensorView::of(const_cast<float*>(server_error_.data()),
                                          static_cast<int64_t>(server_error_.size())),
                           {static_cast<int64_t>(server_error_.size())});
  return d;
}

namespace {

// The f32 tensor `key` of `state`, checked to hold `want` elements, all finite.
const StateTensor& checked_error(const StateDict& state, const std::string& key, int64_t want,
                                 int world_size) {
  const auto it = state.tensors.find(key);
  TERSE_CHECK(it != state.tensors.end(), InvalidArgument, "OneBitAllReduce state has no tensor ",
              key, "; pass a state saved by OneBitAllReduce::state_dict with the same prefix");
  const StateTensor& t = it->second;
  TERSE_CHECK(t.dtype == DType::kF32, InvalidArgument, "OneBitAllReduce state ", key, " holds ",
              dtype_name(t.dtype), "; expected f32 (pass a state saved by state_dict)");
  TERSE_CHECK(t.numel() == want && t.bytes.size() == sizeof(float) * static_cast<size_t>(want),
              InvalidArgument, "OneBitAllReduce state ", key, " has ", t.numel(),
              " elements but this OneBitAllReduce (", world_size, " ranks) needs ", want,
              "; load a checkpoint saved with the same buffer size and world size");
  for (int64_t i = 0; i < want; ++i) {
    float v;
    std::memcpy(&v, t.bytes.data() + sizeof(float) * static_cast<size_t>(i), sizeof v);
    TERSE_CHECK(std::isfinite(v), CorruptData, "OneBitAllReduce state ", key,
                " holds a non-finite value at ", i, "; load an earlier checkpoint");
  }
  return t;
}

}  // namespace

void OneBitAllReduce::load_state_dict(const StateDict& state, const std::string& prefix) {
  const int w = comm().size();
  const StateTensor& we =
      checked_error(state, prefix + "worker_error", static_cast<int64_t>(worker_error_.size()), w);
  const StateTensor& se =
      checked_error(state, prefix + "server_error", static_cast<int64_t>(server_error_.size()), w);
  // Both are valid: only now change anything.
  std::memcpy(worker_error_.data(), we.bytes.data(), we.bytes.size());
  std::memcpy(server_error_.data(), se.bytes.data(), se.bytes.size());
}

}  // namespace terse

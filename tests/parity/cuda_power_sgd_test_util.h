#pragma once

// Shared by the PowerSGD GPU tests (tests/parity/cuda_power_sgd_test.cc and
// tests/multirank/cuda_power_sgd_nccl_test.cc): inputs, device copies of them, and the tolerance
// of a GPU run against the CPU's (docs/collectives.md, "On the GPU").

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "terse/comm/algorithms/power_sgd.h"
#include "terse/core/philox.h"
#include "terse/kernels/cuda_buffer.h"

namespace terse::psgd_test {

using Mat = std::vector<float>;

enum class Fill {
  kRandom,      // uniform in [-1, 1)
  kZeroColumn,  // uniform, column 0 all zero
  kZero,        // all zero: P = 0, the orthogonalization's epsilon path, then a redrawn Q
};

struct Tensor {
  int64_t rows = 0, cols = 0;
  Fill fill = Fill::kRandom;
};

// A function of (salt, rank, step, t).
inline Mat make_matrix(const Tensor& s, uint64_t salt, int rank, int64_t step, size_t t) {
  Mat m(static_cast<size_t>(s.rows * s.cols), 0.0f);
  if (s.fill == Fill::kZero) return m;
  PhiloxStream rng(salt * 1000003u + static_cast<uint64_t>(step) * 131u + t,
                   static_cast<uint64_t>(rank));
  for (float& x : m) x = 2.0f * rng.uniform() - 1.0f;
  if (s.fill == Fill::kZeroColumn) {
    for (int64_t a = 0; a < s.rows; ++a) m[static_cast<size_t>(a * s.cols)] = 0.0f;
  }
  return m;
}

inline std::vector<Mat> make_grads(const std::vector<Tensor>& ts, uint64_t salt, int rank,
                                   int64_t step) {
  std::vector<Mat> g;
  for (size_t t = 0; t < ts.size(); ++t) g.push_back(make_matrix(ts[t], salt, rank, step, t));
  return g;
}

inline std::vector<MatrixView> host_views(std::vector<Mat>& ms, const std::vector<Tensor>& ts) {
  std::vector<MatrixView> v;
  for (size_t t = 0; t < ms.size(); ++t) v.push_back({ms[t].data(), ts[t].rows, ts[t].cols});
  return v;
}

// One rank's gradients in the memory of CUDA device `device`, one buffer per tensor.
class DeviceGrads {
 public:
  DeviceGrads(const std::vector<Mat>& host, const std::vector<Tensor>& ts, int device)
      : ts_(ts), device_(device) {
    for (const Mat& m : host) {
      bufs_.emplace_back(device, sizeof(float) * std::max<size_t>(m.size(), 1));
      if (!m.empty()) cuda_copy(bufs_.back().data(), m.data(), sizeof(float) * m.size());
    }
  }
  std::vector<MatrixView> views() const {
    std::vector<MatrixView> v;
    for (size_t t = 0; t < bufs_.size(); ++t) {
      v.push_back(
          {static_cast<float*>(bufs_[t].data()), ts_[t].rows, ts_[t].cols, Device::cuda(device_)});
    }
    return v;
  }
  std::vector<Mat> to_host() const {
    std::vector<Mat> out;
    for (size_t t = 0; t < bufs_.size(); ++t) {
      Mat m(static_cast<size_t>(ts_[t].rows * ts_[t].cols));
      if (!m.empty()) cuda_copy(m.data(), bufs_[t].data(), sizeof(float) * m.size());
      out.push_back(std::move(m));
    }
    return out;
  }

 private:
  std::vector<Tensor> ts_;
  int device_;
  std::vector<CudaBuffer> bufs_;
};

// r' of a rows x cols matrix under `o`, 0 when it goes dense (power_sgd.cc's rule).
inline int64_t compressed_rank(int64_t rows, int64_t cols, const PowerSgd::Options& o) {
  const int64_t r = std::min({rows, cols, static_cast<int64_t>(o.rank)});
  if (r <= 0) return 0;
  return static_cast<double>(rows + cols) * static_cast<double>(r) * o.min_compression_rate <
                 static_cast<double>(rows) * static_cast<double>(cols)
             ? r
             : 0;
}

// The tolerance of a GPU result against the CPU's, per element, in units of the input's scale
// (max |M| + max |e| over the ranks at that step), after `steps` compressed steps
// (docs/collectives.md, "On the GPU"): 64 u (sqrt(rows) + sqrt(cols)) per step, u = 2^-24.
inline double tolerance(int64_t rows, int64_t cols, int64_t steps) {
  return 64.0 * 0x1p-24 *
         (std::sqrt(static_cast<double>(rows)) + std::sqrt(static_cast<double>(cols))) *
         static_cast<double>(steps);
}

inline double max_abs(const Mat& a) {
  double m = 0;
  for (const float x : a) m = std::max(m, std::fabs(static_cast<double>(x)));
  return m;
}

// Largest |a_i - b_i|; infinity when a NaN appears in either or the sizes differ.
inline double max_abs_diff(const Mat& a, const Mat& b) {
  if (a.size() != b.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    if (!(d <= m)) m = std::isnan(d) ? INFINITY : d;
  }
  return m;
}

inline bool same_bits(const Mat& a, const Mat& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The f32 contents of a state tensor.
inline Mat floats_of(const StateTensor& t) {
  Mat m(t.bytes.size() / sizeof(float));
  if (!m.empty()) std::memcpy(m.data(), t.bytes.data(), t.bytes.size());
  return m;
}

}  // namespace terse::psgd_test

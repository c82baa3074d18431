#pragma once

// The optimizer parity tests' model: host copies of its params and grads and, on a CUDA device,
// their device copies, with deterministic initial values and per-step gradients, the same on
// every device. Shared by cuda_optimizer_test.cc and cuda_matrix_optimizer_test.cc.

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "terse/core/device.h"
#include "terse/core/dtype.h"
#include "terse/core/philox.h"
#include "terse/kernels/cuda_multi_tensor.h"
#include "terse/optim/param.h"

namespace terse::parity {

using Shape = std::vector<int64_t>;

inline int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

template <typename T>
struct ParityModel {
  std::vector<Shape> shapes;
  bool report_shapes = true;  // params() gives each Param its shape (else none, as a flat view)
  std::vector<std::vector<T>> p, g;
  std::vector<void*> dp, dg;
  Device device;

  ParityModel(std::vector<Shape> s, Device dev) : shapes(std::move(s)), device(dev) {
    for (size_t t = 0; t < shapes.size(); ++t) {
      PhiloxStream rng(31 + t, 2);
      p.emplace_back(static_cast<size_t>(numel_of(shapes[t])));
      g.emplace_back(p.back().size());
      for (T& x : p.back()) store_from_float(&x, 0, rng.uniform() * 2 - 1);
      if (dev.is_cuda()) {
        dp.push_back(cuda_alloc_zeroed(dev.index, bytes(t)));
        dg.push_back(cuda_alloc_zeroed(dev.index, bytes(t)));
      }
    }
    upload();
  }
  // Flat tensors of these sizes, whose Params carry no shape.
  ParityModel(const std::vector<int64_t>& sizes, Device dev)
      : ParityModel(flat_shapes(sizes), dev) {
    report_shapes = false;
  }
  ParityModel(const ParityModel&) = delete;
  ParityModel& operator=(const ParityModel&) = delete;
  ~ParityModel() {
    for (void* x : dp) cuda_free(x);
    for (void* x : dg) cuda_free(x);
  }

  size_t bytes(size_t t) const { return p[t].size() * sizeof(T); }
  std::vector<Param> params(DType dtype) {
    std::vector<Param> out(p.size());
    for (size_t t = 0; t < p.size(); ++t) {
      const auto n = static_cast<int64_t>(p[t].size());
      void* pv = device.is_cuda() ? dp[t] : static_cast<void*>(p[t].data());
      void* gv = device.is_cuda() ? dg[t] : static_cast<void*>(g[t].data());
      out[t].value = TensorView(pv, n, dtype, device);
      out[t].grad = TensorView(gv, n, dtype, device);
      if (report_shapes) out[t].shape = shapes[t];
      out[t].name = "t" + std::to_string(t);
    }
    return out;
  }
  // The gradient of `step`, the same on every device; zero(t, step) true makes tensor t's zero.
  void set_grads(int step, const std::function<bool(size_t, int)>& zero = nullptr) {
    for (size_t t = 0; t < g.size(); ++t) {
      PhiloxStream rng(1000 + static_cast<uint64_t>(step), t);
      const bool z = zero && zero(t, step);
      for (T& x : g[t]) store_from_float(&x, 0, z ? 0.0f : (rng.uniform() * 2 - 1) * 0.1f);
      if (device.is_cuda()) cuda_copy(dg[t], g[t].data(), bytes(t));
    }
  }
  // Host values to the device copies, and back.
  void upload() {
    if (!device.is_cuda()) return;
    for (size_t t = 0; t < p.size(); ++t) cuda_copy(dp[t], p[t].data(), bytes(t));
  }
  void fetch() {
    if (!device.is_cuda()) return;
    for (size_t t = 0; t < p.size(); ++t) cuda_copy(p[t].data(), dp[t], bytes(t));
  }

 private:
  static std::vector<Shape> flat_shapes(const std::vector<int64_t>& sizes) {
    std::vector<Shape> out;
    for (int64_t n : sizes) out.push_back({n});
    return out;
  }
};

}  // namespace terse::parity

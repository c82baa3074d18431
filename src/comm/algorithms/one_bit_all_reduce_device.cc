// OneBitAllReduce on CUDA views (one_bit_all_reduce.h, "On the GPU"): the CPU path's steps
// (one_bit_all_reduce.cc) as GPU passes (terse/kernels/cuda_one_bit_all_reduce.h) with the errors
// in the GPU's memory. What crosses to the host: the lane sums of the two norms (8 doubles per
// 2^16 elements) and the scales (W floats each way); on a host communicator also the sign bytes
// (N / 8 each way), staged through the host buffers.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "one_bit_all_reduce_internal.h"
#include "terse/comm/algorithms/pairwise_exchange.h"
#include "terse/comm/work.h"
#include "terse/core/check.h"
#include "terse/kernels/cuda_power_sgd.h"

namespace terse {

using one_bit_detail::bits_of;
using one_bit_detail::blocks_of;
using one_bit_detail::kFlagNonFinite;
using one_bit_detail::scale_of;
using one_bit_detail::sum_lane_blocks;

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

template <typename T>
T* ptr(const CudaBuffer& b) {
  return static_cast<T*>(b.data());
}

// The sum of squares of a pass over `count` elements from its lane sums on the device (waits
// for the pass); `host` is the staging.
double sum_of_squares(const CudaBuffer& lanes, std::vector<double>& host, int64_t count) {
  const int64_t blocks = blocks_of(count);
  host.resize(static_cast<size_t>(8 * blocks));
  cuda_copy(host.data(), lanes.data(), sizeof(double) * host.size());
  return sum_lane_blocks(host.data(), blocks);
}

}  // namespace

OneBitAllReduce::DeviceState::DeviceState(int dev, int64_t padded, int world) : device(dev) {
  const auto n = static_cast<size_t>(padded);
  const auto w = static_cast<size_t>(world);
  worker_error = CudaBuffer(dev, sizeof(float) * n);
  server_error = CudaBuffer(dev, sizeof(float) * (n / w));
  server_sum = CudaBuffer(dev, sizeof(float) * (n / w));
  signs = CudaBuffer(dev, n / 8);
  received = CudaBuffer(dev, n / 8);
  server_signs = CudaBuffer(dev, n / (8 * w));
  gathered = CudaBuffer(dev, n / 8);
  lane_sums = CudaBuffer(dev, sizeof(double) * 8 * static_cast<size_t>(blocks_of(padded)));
  scales = CudaBuffer(dev, sizeof(float) * (3 * w + 2));
}

void OneBitAllReduce::move_state(Device to) {
  if (to == state_device()) return;
  // Host copies first (from wherever they are), then the new home; nothing changes on error.
  std::vector<float> we = worker_error(), se = server_error();
  if (to.is_cuda()) {
    const CudaCurrentDevice current(to.index);
    auto d = std::make_unique<DeviceState>(to.index, padded_, comm().size());
    cuda_copy(d->worker_error.data(), we.data(), sizeof(float) * we.size());
    cuda_copy(d->server_error.data(), se.data(), sizeof(float) * se.size());
    dev_ = std::move(d);
    worker_error_ = std::vector<float>();
    server_error_ = std::vector<float>();
    // Only the sign buffers of a host communicator's staging stay on the host.
    server_sum_ = std::vector<float>();
    block_sums_ = std::vector<double>();
    if (comm().device().is_cuda()) {
      signs_ = std::vector<uint8_t>();
      received_ = std::vector<uint8_t>();
      server_signs_ = std::vector<uint8_t>();
      gathered_signs_ = std::vector<uint8_t>();
    }
    size_host_scratch(false);
    return;
  }
  worker_error_ = std::move(we);
  server_error_ = std::move(se);
  dev_.reset();
  size_host_scratch(true);
}

OneBitAllReduceReport OneBitAllReduce::all_reduce_device(TensorView inout) {
  Communicator& c = comm();
  const int w = c.size();
  const int me = c.rank();
  const int64_t n = padded_;
  const int64_t numel = numel_;
  const int64_t chunk = n / w;
  const int64_t chunk_bytes = chunk / 8;
  const bool gpu_wire = c.device().is_cuda();
  const Device wire = gpu_wire ? c.device() : Device::cpu();
  move_state(inout.device);
  DeviceState& d = *dev_;
  const int dev = d.device;
  const CudaCurrentDevice current(dev);
  float* m = inout.as<float>();
  auto* e = ptr<float>(d.worker_error);
  auto* es = ptr<float>(d.server_error);
  auto* scales = ptr<float>(d.scales);
  // Views of the sign buffers as the communicator moves them: the GPU's, or the host staging.
  const auto bytes_view = [&](const CudaBuffer& dv, std::vector<uint8_t>& hv, int64_t count) {
    return gpu_wire ? TensorView(dv.data(), count, DType::kU8, wire)
                    : TensorView::of(hv.data(), count);
  };
  const auto fview = [&](float* p, int64_t count) {
    return TensorView(p, count, DType::kF32, wire);
  };

  // 1. ||m + e_w||^2 and the signs of x, nothing written but scratch.
  double compress_s = 0, overlap_s = 0, drain_s = 0;
  auto tc = Clock::now();
  cuda_one_bit_worker_pass(dev, m, numel, e, n, ptr<uint8_t>(d.signs), ptr<double>(d.lane_sums));
  const double ss = sum_of_squares(d.lane_sums, d.host_lane_sums, n);
  float my_scale = std::isfinite(ss) ? scale_of(ss, n) : kFlagNonFinite;
  compress_s += since(tc);
  const auto tw = Clock::now();
  if (gpu_wire) {
    cuda_copy(scales, &my_scale, sizeof(float));
    c.all_gather(fview(scales, 1), fview(scales + 1, w));
    cuda_copy(worker_scales_.data(), scales + 1, sizeof(float) * static_cast<size_t>(w));
  } else {
    c.all_gather(TensorView::of(&my_scale, 1), TensorView::of(worker_scales_.data(), w));
  }
  const double wait_s = since(tw);
  one_bit_detail::check_worker_scales(worker_scales_.data(), w, me, std::string());

  // 2. The signs go out; e_w <- x - s sgn(x) runs meanwhile unless deferred to the decode.
  const uint32_t s_bits = bits_of(worker_scales_[static_cast<size_t>(me)]);
  {
    if (!gpu_wire) cuda_copy(signs_.data(), d.signs.data(), static_cast<size_t>(n / 8));
    const TensorView in = bytes_view(d.signs, signs_, n / 8);
    const TensorView out = bytes_view(d.received, received_, n / 8);
    const std::unique_ptr<Work> sent = pairwise_ && !gpu_wire
                                           ? pairwise_all_to_all_async(c, in, out)
                                           : c.all_to_all_async(in, out);
    const auto to = Clock::now();
    if (!defer_) cuda_one_bit_worker_error(dev, m, numel, e, n, s_bits);
    overlap_s += since(to);
    const auto td = Clock::now();
    sent->wait(c.timeout());
    drain_s += since(td);
    if (!gpu_wire) cuda_copy(d.received.data(), received_.data(), static_cast<size_t>(n / 8));
  }

  // 3. The server's chunk: y, its norm and signs.
  tc = Clock::now();
  std::vector<float> weights(static_cast<size_t>(w));
  for (size_t j = 0; j < weights.size(); ++j) {
    weights[j] = worker_scales_[j] / static_cast<float>(w);
  }
  float* c_dev = scales + 2 * w + 2;
  cuda_copy(c_dev, weights.data(), sizeof(float) * weights.size());
  auto* y = ptr<float>(d.server_sum);
  cuda_one_bit_server_pass(dev, ptr<uint8_t>(d.received), c_dev, w, es, chunk, y,
                           ptr<uint8_t>(d.server_signs), ptr<double>(d.lane_sums));
  const float my_server_scale =
      scale_of(sum_of_squares(d.lane_sums, d.host_lane_sums, chunk), chunk);
  compress_s += since(tc);

  // 4. Every server's signs and scale go out while e_s <- y - s_s sgn(y) runs.
  {
    if (!gpu_wire) {
      cuda_copy(server_signs_.data(), d.server_signs.data(), static_cast<size_t>(chunk_bytes));
    }
    const TensorView mine = bytes_view(d.server_signs, server_signs_, chunk_bytes);
    const TensorView all = bytes_view(d.gathered, gathered_signs_, n / 8);
    const std::unique_ptr<Work> signs_out = pairwise_ && !gpu_wire
                                                ? pairwise_all_gather_async(c, mine, all)
                                                : c.all_gather_async(mine, all);
    float host_scale = my_server_scale;
    std::unique_ptr<Work> scales_out;
    if (gpu_wire) {
      cuda_copy(scales + w + 1, &my_server_scale, sizeof(float));
      scales_out = c.all_gather_async(fview(scales + w + 1, 1), fview(scales + w + 2, w));
    } else {
      scales_out = c.all_gather_async(TensorView::of(&host_scale, 1),
                                      TensorView::of(server_scales_.data(), w));
    }
    const auto to = Clock::now();
    cuda_one_bit_server_error(dev, y, es, chunk, bits_of(my_server_scale));
    const auto td = Clock::now();
    overlap_s += std::chrono::duration<double>(td - to).count();
    signs_out->wait(c.timeout());
    scales_out->wait(c.timeout());
    drain_s += since(td);
    if (gpu_wire) {
      cuda_copy(server_scales_.data(), scales + w + 2, sizeof(float) * static_cast<size_t>(w));
    } else {
      cuda_copy(d.gathered.data(), gathered_signs_.data(), static_cast<size_t>(n / 8));
      cuda_copy(scales + w + 2, server_scales_.data(), sizeof(float) * static_cast<size_t>(w));
    }
  }
  one_bit_detail::check_server_scales(server_scales_.data(), w, me);

  // 5. out[chunk j] = s_s^j unpack(bits of j), with the deferred e_w update in the same pass.
  tc = Clock::now();
  cuda_one_bit_decode(dev, ptr<uint8_t>(d.gathered), scales + w + 2, chunk, m, numel,
                      defer_ ? e : nullptr, n, s_bits);
  cuda_synchronize();  // the report's times, and a failure of the passes, belong to this call
  compress_s += since(tc);

  const bool pairwise = pairwise_ && !gpu_wire;
  OneBitAllReduceReport rep =
      one_bit_detail::make_report(numel_, n, w, pairwise ? 2 + 2 * (w - 1) : 4, pairwise);
  rep.compress_s = compress_s;
  rep.wait_s = wait_s;
  rep.overlap_s = overlap_s;
  rep.drain_s = drain_s;
  return rep;
}

}  // namespace terse

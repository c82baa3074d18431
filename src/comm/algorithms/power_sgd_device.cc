// PowerSgd on CUDA views (power_sgd.h, "On the GPU"): the CPU path's steps (power_sgd.cc) as GPU
// work (terse/kernels/cuda_power_sgd.h) on the gradients in place, with Q and e in the GPU's
// memory. What crosses to the host: per-tensor flags and the verdicts (a few words), and on a
// communicator of host memory P, Q and the dense tensors for their all-reduces; a dense step
// there stages every tensor, as it must send them all.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "power_sgd_internal.h"
#include "terse/core/check.h"
#include "terse/kernels/cuda_buffer.h"
#include "terse/kernels/cuda_power_sgd.h"

namespace terse {

using power_sgd_detail::check_p_orthogonalized;
using power_sgd_detail::check_p_sum_finite;
using power_sgd_detail::dense_report;
using power_sgd_detail::error_may_overflow;
using power_sgd_detail::has_zero_column;
using power_sgd_detail::kFlagBadArguments;

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::vector<float> download(const CudaBuffer& b) {
  std::vector<float> v(b.bytes() / sizeof(float));
  if (!v.empty()) cuda_copy(v.data(), b.data(), sizeof(float) * v.size());
  return v;
}

CudaBuffer upload(const std::vector<float>& v, int device) {
  if (v.empty()) return CudaBuffer();
  CudaBuffer b(device, sizeof(float) * v.size());
  cuda_copy(b.data(), v.data(), b.bytes());
  return b;
}

// 1 + the first i whose flag is set (a verdict), 0 when none. Waits for the flags.
float first_flagged(const uint32_t* flags, size_t count) {
  std::vector<uint32_t> h(count);
  if (count > 0) cuda_copy(h.data(), flags, sizeof(uint32_t) * count);
  for (size_t i = 0; i < count; ++i) {
    if (h[i] != 0) return static_cast<float>(i + 1);
  }
  return 0.0f;
}

// Sums `count` floats of device memory over the ranks: in place on a communicator of GPU memory,
// else through the host array `host` (only these floats cross).
void all_reduce_device(Communicator& c, float* data, int64_t count, int device,
                       std::vector<float>& host) {
  if (c.device().is_cuda()) {
    c.all_reduce(TensorView(data, count, DType::kF32, Device::cuda(device)), ReduceOp::kSum);
    return;
  }
  host.resize(static_cast<size_t>(count));
  cuda_copy(host.data(), data, sizeof(float) * static_cast<size_t>(count));
  c.all_reduce(TensorView::of(host.data(), count), ReduceOp::kSum);
  cuda_copy(data, host.data(), sizeof(float) * static_cast<size_t>(count));
}

// The verdicts' all-reduce: on the host, or through `staging` on a communicator of GPU memory.
void all_reduce_verdicts(Communicator& c, std::vector<float>& v, CudaBuffer& staging, int device) {
  const auto n = static_cast<int64_t>(v.size());
  if (c.device().is_cpu()) {
    c.all_reduce(TensorView::of(v.data(), n), ReduceOp::kSum);
    return;
  }
  float* d = cuda_ensure<float>(staging, device, n);
  cuda_copy(d, v.data(), sizeof(float) * v.size());
  c.all_reduce(TensorView(d, n, DType::kF32, Device::cuda(device)), ReduceOp::kSum);
  cuda_copy(v.data(), d, sizeof(float) * v.size());
}

}  // namespace

std::vector<float> PowerSgd::host_q(size_t i) const {
  if (dev_) return download(dev_->q[i]);
  return slots_[i].q;
}

std::vector<float> PowerSgd::host_error(size_t i) const {
  if (dev_) return download(dev_->error[i]);
  return slots_[i].error;
}

std::unique_ptr<PowerSgd::DeviceState> PowerSgd::make_device_state(const std::vector<Slot>& slots,
                                                                   int device) const {
  auto d = std::make_unique<DeviceState>();
  d->device = device;
  const size_t count = slots.size();
  d->q.resize(count);
  d->error.resize(count);
  std::vector<uint32_t> carry(2 * count, 0);
  for (size_t i = 0; i < count; ++i) {
    const Slot& s = slots[i];
    d->q[i] = upload(s.q, device);
    d->error[i] = upload(s.error, device);
    if (!s.q.empty()) carry[i] = has_zero_column(s.q.data(), s.cols, s.r) ? 1 : 0;
    if (!s.error.empty()) {
      carry[count + i] =
          error_may_overflow(s.error.data(), static_cast<int64_t>(s.error.size())) ? 1 : 0;
    }
  }
  uint32_t* words = cuda_ensure<uint32_t>(d->carry, device, static_cast<int64_t>(carry.size()));
  if (!carry.empty()) cuda_copy(words, carry.data(), sizeof(uint32_t) * carry.size());
  return d;
}

void PowerSgd::move_state(Device to) {
  if (to == state_device()) return;
  const size_t count = slots_.size();
  if (to.is_cuda()) {
    std::vector<Slot> host = slots_;
    if (dev_) {  // from another GPU
      for (size_t i = 0; i < count; ++i) {
        host[i].q = host_q(i);
        host[i].error = host_error(i);
      }
    }
    std::unique_ptr<DeviceState> d = make_device_state(host, to.index);
    for (Slot& s : slots_) {
      s.q = std::vector<float>();
      s.error = std::vector<float>();
    }
    dev_ = std::move(d);
    return;
  }
  std::vector<std::vector<float>> qs(count), errors(count);
  for (size_t i = 0; i < count; ++i) {
    qs[i] = host_q(i);
    errors[i] = host_error(i);
  }
  for (size_t i = 0; i < count; ++i) {
    slots_[i].q = std::move(qs[i]);
    slots_[i].error = std::move(errors[i]);
  }
  dev_.reset();
}

PowerSgdReport PowerSgd::run_dense_device(const std::vector<MatrixView>& grads, int device,
                                          bool send_zeros, const std::string& local_error,
                                          uint64_t extra_bytes) {
  Communicator& c = comm();
  const int n = c.size();
  const size_t count = slots_.size();
  int64_t total = 0;
  for (const Slot& s : slots_) total += s.rows * s.cols;

  if (c.device().is_cpu()) {
    // A dense step sends every tensor anyway: the CPU path on host copies (the same bits), then
    // the averages back.
    pbuf_.resize(static_cast<size_t>(total));
    std::vector<MatrixView> host(count);
    int64_t off = 0;
    for (size_t i = 0; i < count; ++i) {
      const int64_t numel = slots_[i].rows * slots_[i].cols;
      host[i] = MatrixView{pbuf_.data() + off, slots_[i].rows, slots_[i].cols};
      if (!send_zeros && numel > 0) {
        cuda_copy(host[i].data, grads[i].data, sizeof(float) * static_cast<size_t>(numel));
      }
      off += numel;
    }
    const PowerSgdReport rep = run_dense(host, send_zeros, local_error, extra_bytes);
    for (size_t i = 0; i < count; ++i) {
      const int64_t numel = slots_[i].rows * slots_[i].cols;
      if (numel > 0) {
        cuda_copy(grads[i].data, host[i].data, sizeof(float) * static_cast<size_t>(numel));
      }
    }
    return rep;
  }

  // In place on the GPU: every tensor, then one verdict slot per rank, in one all-reduce.
  DeviceState& d = *dev_;
  const Device dev = Device::cuda(device);
  float* buf = cuda_ensure<float>(d.qbuf, device, total + n);
  uint32_t* flags = cuda_ensure<uint32_t>(d.flags, device, static_cast<int64_t>(count) + 1);
  float flag = send_zeros ? kFlagBadArguments : 0.0f;
  if (send_zeros) {
    cuda_zero(buf, sizeof(float) * static_cast<size_t>(total + n));
  } else {
    cuda_zero(flags, sizeof(uint32_t) * (count + 1));
    int64_t off = 0;
    for (size_t i = 0; i < count; ++i) {
      const int64_t numel = slots_[i].rows * slots_[i].cols;
      if (numel > 0) {
        cuda_copy(buf + off, grads[i].data, sizeof(float) * static_cast<size_t>(numel));
        cuda_power_sgd_flag_nonfinite(device, grads[i].data, numel, flags + i);
      }
      off += numel;
    }
    flag = first_flagged(flags, count);
    cuda_zero(buf + total, sizeof(float) * static_cast<size_t>(n));
  }
  cuda_copy(buf + total + c.rank(), &flag, sizeof(float));
  c.all_reduce(TensorView(buf, total + n, DType::kF32, dev), ReduceOp::kSum);
  verdicts_.resize(static_cast<size_t>(n));
  cuda_copy(verdicts_.data(), buf + total, sizeof(float) * static_cast<size_t>(n));
  check_flags(verdicts_.data(), local_error);

  const float w = static_cast<float>(n);
  int64_t off = 0;
  for (size_t i = 0; i < count; ++i) {
    const int64_t numel = slots_[i].rows * slots_[i].cols;
    if (numel > 0) {
      cuda_copy(grads[i].data, buf + off, sizeof(float) * static_cast<size_t>(numel));
      cuda_divide(TensorView(grads[i].data, numel, DType::kF32, dev), w);
    }
    off += numel;
  }
  cuda_power_sgd_wait(device);
  return dense_report(total, n, extra_bytes);
}

PowerSgdReport PowerSgd::run_compressed_device(const std::vector<MatrixView>& grads, int64_t step,
                                               int device, bool send_zeros,
                                               const std::string& local_error,
                                               uint64_t extra_bytes) {
  Communicator& c = comm();
  const int n = c.size();
  const double eps = options_.orthogonalization_epsilon;
  const bool ef = options_.error_feedback;
  const size_t count = slots_.size();
  const Layout l = layout();
  DeviceState& d = *dev_;

  double compress_s = 0;
  auto tc = Clock::now();
  float* pbuf = cuda_ensure<float>(d.pbuf, device, l.psize);
  float* qbuf = cuda_ensure<float>(d.qbuf, device, l.qsize);
  uint32_t* flags = cuda_ensure<uint32_t>(d.flags, device, static_cast<int64_t>(count) + 1);
  uint32_t* carry = cuda_ensure<uint32_t>(d.carry, device, 2 * static_cast<int64_t>(count));
  float flag = send_zeros ? kFlagBadArguments : 0.0f;
  if (!send_zeros) {
    // What the last compressed step left: which stored Q has an all-zero column (redrawn, as on
    // the CPU), which e may make M + e overflow (checked element by element, as on the CPU; for
    // the others a non-finite M shows in P, which is checked).
    std::vector<uint32_t> left(2 * count);
    cuda_copy(left.data(), carry, sizeof(uint32_t) * left.size());
    cuda_zero(flags, sizeof(uint32_t) * count);
    std::vector<CudaOrthoMatrix> qs;
    for (size_t i = 0; i < count; ++i) {
      const Slot& s = slots_[i];
      if (s.r == 0) {
        cuda_power_sgd_flag_nonfinite(device, grads[i].data, s.rows * s.cols, flags + i);
        continue;
      }
      float* q = qbuf + l.qoff[i];
      const int64_t qn = s.cols * s.r;
      const bool stored = options_.warm_start && d.q[i].data() != nullptr;
      if (stored && left[i] == 0) {
        cuda_copy(q, d.q[i].data(), sizeof(float) * static_cast<size_t>(qn));
      } else {
        // The CPU's draw (host Philox and libm), uploaded: the same Q on every rank and device.
        qt_.resize(static_cast<size_t>(qn));
        power_sgd_random_q(options_.seed, i, options_.warm_start && !stored ? -1 : step, qt_.data(),
                           qn);
        cuda_copy(q, qt_.data(), sizeof(float) * static_cast<size_t>(qn));
      }
      qs.push_back(CudaOrthoMatrix{q, s.cols, s.r});
    }
    cuda_power_sgd_orthogonalize(device, qs, eps);
    // P = M Q + e Q; nothing of the caller's or of this object's state is written before every
    // rank's verdict is known.
    for (size_t i = 0; i < count; ++i) {
      const Slot& s = slots_[i];
      if (s.r == 0) continue;
      const auto* e = ef && d.error[i].data() != nullptr
                          ? static_cast<const float*>(d.error[i].data())
                          : nullptr;
      if (e != nullptr && left[count + i] != 0) {
        cuda_power_sgd_flag_nonfinite_sum(device, grads[i].data, e, s.rows * s.cols, flags + i);
      }
      float* p = pbuf + l.poff[i];
      cuda_power_sgd_project(device, grads[i].data, e, s.rows, s.cols, qbuf + l.qoff[i], s.r, p);
      cuda_power_sgd_flag_nonfinite(device, p, s.rows * s.r, flags + i);
    }
    flag = first_flagged(flags, count);
  }
  compress_s += since(tc);
  verdicts_.assign(static_cast<size_t>(n), 0.0f);
  verdicts_[static_cast<size_t>(c.rank())] = flag;
  const auto tw = Clock::now();
  all_reduce_verdicts(c, verdicts_, d.verdicts, device);
  const double wait_s = since(tw);
  check_flags(verdicts_.data(), local_error);
  all_reduce_device(c, pbuf, l.psize, device, pbuf_);

  // Orthogonalize every P, and check the sums and the results, before committing.
  tc = Clock::now();
  cuda_zero(flags, sizeof(uint32_t) * (count + 1));
  cuda_power_sgd_flag_nonfinite(device, pbuf, l.psize, flags + count);
  std::vector<CudaOrthoMatrix> ps;
  for (size_t i = 0; i < count; ++i) {
    if (slots_[i].r > 0)
      ps.push_back(CudaOrthoMatrix{pbuf + l.poff[i], slots_[i].rows, slots_[i].r});
  }
  cuda_power_sgd_orthogonalize(device, ps, eps);
  for (size_t i = 0; i < count; ++i) {
    const Slot& s = slots_[i];
    if (s.r > 0) cuda_power_sgd_flag_nonfinite(device, pbuf + l.poff[i], s.rows * s.r, flags + i);
  }
  std::vector<uint32_t> bad(count + 1);
  cuda_copy(bad.data(), flags, sizeof(uint32_t) * bad.size());
  check_p_sum_finite(bad[count] == 0, c.rank());
  for (size_t i = 0; i < count; ++i) {
    const Slot& s = slots_[i];
    if (s.r > 0) check_p_orthogonalized(bad[i] == 0, c.rank(), i, s.rows, s.cols, eps);
  }

  // Committed: Q = (M + e)^T P as M^T P + e^T P, the dense tensors beside them.
  std::vector<char> add_error(count, 0);
  for (size_t i = 0; i < count; ++i) {
    const Slot& s = slots_[i];
    if (s.r == 0) {
      const int64_t numel = s.rows * s.cols;
      if (numel > 0) {
        cuda_copy(qbuf + l.qoff[i], grads[i].data, sizeof(float) * static_cast<size_t>(numel));
      }
      continue;
    }
    add_error[i] = ef && d.error[i].data() != nullptr ? 1 : 0;
    if (ef && add_error[i] == 0) {
      d.error[i] = CudaBuffer(device, sizeof(float) * static_cast<size_t>(s.rows * s.cols));
    }
    const auto* e = add_error[i] != 0 ? static_cast<const float*>(d.error[i].data()) : nullptr;
    cuda_power_sgd_back_project(device, grads[i].data, e, s.rows, s.cols, pbuf + l.poff[i], s.r,
                                qbuf + l.qoff[i]);
  }
  cuda_power_sgd_wait(device);
  compress_s += since(tc);
  all_reduce_device(c, qbuf, l.qsize, device, qbuf_);

  // Q /= W (dense tensors: sum / W), M <- P Q^T and e <- M + e - P Q^T in one pass, Q kept.
  tc = Clock::now();
  cuda_divide(TensorView(qbuf, l.qsize, DType::kF32, Device::cuda(device)), static_cast<float>(n));
  cuda_zero(carry, sizeof(uint32_t) * 2 * count);
  for (size_t i = 0; i < count; ++i) {
    const Slot& s = slots_[i];
    const float* q = qbuf + l.qoff[i];
    if (s.r == 0) {
      const int64_t numel = s.rows * s.cols;
      if (numel > 0) cuda_copy(grads[i].data, q, sizeof(float) * static_cast<size_t>(numel));
      continue;
    }
    auto* e = ef ? static_cast<float*>(d.error[i].data()) : nullptr;
    cuda_power_sgd_decompress(device, grads[i].data, e, add_error[i] != 0, s.rows, s.cols,
                              pbuf + l.poff[i], q, s.r, carry + count + i);
    if (options_.warm_start) {
      const size_t qbytes = sizeof(float) * static_cast<size_t>(s.cols * s.r);
      if (d.q[i].data() == nullptr) d.q[i] = CudaBuffer(device, qbytes);
      cuda_copy(d.q[i].data(), q, qbytes);
      cuda_power_sgd_flag_zero_column(device, static_cast<const float*>(d.q[i].data()), s.cols, s.r,
                                      carry + i);
    }
  }
  cuda_power_sgd_wait(device);
  compress_s += since(tc);

  PowerSgdReport rep = compressed_report(l, extra_bytes);
  rep.compress_s = compress_s;
  rep.wait_s = wait_s;
  return rep;
}

}  // namespace terse

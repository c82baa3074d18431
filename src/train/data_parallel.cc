#include "terse/train/data_parallel.h"

#include <chrono>
#include <cstring>

#include "terse/core/check.h"
#include "terse/core/dispatch.h"
#include "terse/core/dtype.h"

namespace terse {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Bytes one rank sends in a ring all-reduce of `nbytes`: reduce-scatter plus all-gather, each
// moving (N-1)/N of the buffer.
uint64_t ring_bytes(uint64_t nbytes, int world) {
  if (world <= 1) return 0;
  const uint64_t n = static_cast<uint64_t>(world);
  return 2 * (n - 1) * nbytes / n;
}

std::string param_label(const Param& p, size_t index) {
  return p.name.empty() ? "#" + std::to_string(index)
                        : "'" + p.name + "' (#" + std::to_string(index) + ")";
}

std::vector<BucketPlan::ParamInfo> infos_of(const std::vector<Param>& params) {
  std::vector<BucketPlan::ParamInfo> infos;
  infos.reserve(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const Param& p = params[i];
    if (!p.shape.empty()) {
      int64_t n = 1;
      for (int64_t d : p.shape) n *= d;
      TERSE_CHECK(n == p.value.numel, InvalidArgument, "parameter ", param_label(p, i),
                  " has shape of ", n, " elements but a value view of ", p.value.numel,
                  "; pass a shape that matches the tensor");
    }
    TERSE_CHECK(p.value.numel == 0 || p.value.data != nullptr, InvalidArgument, "parameter ",
                param_label(p, i), " has a null value view of ", p.value.numel,
                " elements; pass the parameter's storage");
    TERSE_CHECK(p.value.device == params[0].value.device, InvalidArgument, "parameter ",
                param_label(p, i), " lives on ", p.value.device.str(), " but parameter ",
                param_label(params[0], 0), " on ", params[0].value.device.str(),
                "; one engine's buckets live on one device: move the model there");
    infos.push_back(BucketPlan::ParamInfo{p.value.numel, p.value.dtype});
  }
  return infos;
}

}  // namespace

DataParallel::DataParallel(Communicator& comm, std::vector<Param> params, double bucket_mb)
    : comm_(comm), params_(std::move(params)), plan_(infos_of(params_), bucket_mb) {
  device_ = params_.empty() ? Device::cpu() : params_[0].value.device;
  const Device comm_device = comm_.device();
  TERSE_CHECK(comm_device.is_cpu() || comm_device == device_, InvalidArgument,
              "the parameters live on ", device_.str(), " but the communicator moves memory of ",
              comm_device.str(),
              "; build the communicator on the parameters' GPU or use a host "
              "backend (mpi)");
  stage_ = device_.is_cuda() && comm_device.is_cpu();
  const auto& buckets = plan_.buckets();
  storage_.resize(buckets.size());
  uint64_t total_numel = 0;
  pending_.resize(buckets.size());
  for (size_t b = 0; b < buckets.size(); ++b) {
    storage_[b].assign((buckets[b].nbytes() + 7) / 8, 0);
    if (device_.is_cuda()) device_storage_.emplace_back(device_.index, buckets[b].nbytes());
    pending_[b] = buckets[b].params.size();
    bytes_sent_per_step_ += ring_bytes(buckets[b].nbytes(), comm_.size());
    payload_per_step_ += buckets[b].nbytes();
    total_numel += static_cast<uint64_t>(buckets[b].numel);
  }
  bytes_dense_per_step_ = ring_bytes(total_numel * sizeof(float), comm_.size());
  payload_dense_per_step_ = total_numel * sizeof(float);
  host_params_ = params_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const BucketSlot& s = plan_.slot(i);
    params_[i].grad = bucket_view(s.bucket).slice(s.offset, s.numel);
    host_params_[i].grad = host_bucket_view(s.bucket).slice(s.offset, s.numel);
  }
  ready_.assign(params_.size(), false);
}

DataParallel::~DataParallel() {
  // Collectives still in flight reference our buffers: wait for them, but never throw here.
  for (auto& w : work_) {
    if (!w) continue;
    try {
      w->wait(comm_.timeout());
    } catch (...) {
    }
  }
}

TensorView DataParallel::bucket_view(size_t b) const {
  if (device_.is_cpu()) return host_bucket_view(b);
  TERSE_CHECK(b < device_storage_.size(), InvalidArgument, "bucket index ", b,
              " is out of range; the engine has ", device_storage_.size(), " buckets");
  const Bucket& bucket = plan_.buckets()[b];
  return TensorView(device_storage_[b].data(), bucket.numel, bucket.dtype, device_);
}

TensorView DataParallel::host_bucket_view(size_t b) const {
  TERSE_CHECK(b < storage_.size(), InvalidArgument, "bucket index ", b,
              " is out of range; the engine has ", storage_.size(), " buckets");
  const Bucket& bucket = plan_.buckets()[b];
  // The view is non-owning; the engine keeps the storage alive and unmoved.
  void* data = const_cast<uint64_t*>(storage_[b].data());
  return TensorView(data, bucket.numel, bucket.dtype);
}

void DataParallel::copy_to_host(size_t b) {
  cuda_copy(storage_[b].data(), device_storage_[b].data(), plan_.buckets()[b].nbytes());
}

void DataParallel::copy_to_device(size_t b) {
  cuda_copy(device_storage_[b].data(), storage_[b].data(), plan_.buckets()[b].nbytes());
}

void DataParallel::broadcast_parameters() {
  // Not timed into comm_seconds_: that belongs to the next step's finish(), and a broadcast
  // before training (which waits for the last rank to start) is no step's communication. It
  // made the first step's time_comm_s exceed its wall time.
  std::vector<uint64_t> staged;
  for (const Param& p : params_) {
    if (p.value.numel == 0) continue;
    if (!stage_) {
      comm_.broadcast(p.value, 0);
      continue;
    }
    const size_t nbytes = static_cast<size_t>(p.value.numel) * dtype_size(p.value.dtype);
    staged.resize((nbytes + 7) / 8);
    cuda_copy(staged.data(), p.value.data, nbytes);
    comm_.broadcast(TensorView(staged.data(), p.value.numel, p.value.dtype), 0);
    cuda_copy(p.value.data, staged.data(), nbytes);
  }
}

void DataParallel::mark_ready(size_t index) {
  TERSE_CHECK(index < params_.size(), InvalidArgument, "mark_ready(", index,
              "): parameter index out of range; the engine has ", params_.size(), " parameters");
  TERSE_CHECK(!ready_[index], InvalidArgument, "gradient of parameter ",
              param_label(params_[index], index),
              " was marked ready twice in one step; call finish() between steps and mark each "
              "parameter once");
  ready_[index] = true;
  ++num_ready_;
  --pending_[plan_.slot(index).bucket];
  if (!compression_ && exchange_enabled_) launch_ready_buckets();
}

void DataParallel::launch_ready_buckets() {
  const auto t0 = Clock::now();
  // Strictly in bucket order: every rank must issue the same collectives in the same order,
  // whatever order its hooks fired in.
  while (next_launch_ < pending_.size() && pending_[next_launch_] == 0) {
    const size_t b = next_launch_++;
    if (!stage_) {
      work_.push_back(comm_.all_reduce_async(bucket_view(b), ReduceOp::kSum));
    } else if (comm_.size() > 1) {  // one rank: the bucket is its own sum, nothing to move
      copy_to_host(b);              // waits for the gradients that backward enqueued
      work_.push_back(comm_.all_reduce_async(host_bucket_view(b), ReduceOp::kSum));
    }
  }
  // Let backends that progress only when polled (MPI) move the earlier buckets along.
  for (auto& w : work_) {
    if (w && w->test()) w.reset();
  }
  comm_seconds_ += seconds_since(t0);
}

void DataParallel::drain() {
  for (auto& w : work_) {
    if (w) w->wait(comm_.timeout());
    w.reset();
  }
  work_.clear();
}

void DataParallel::set_compression(std::unique_ptr<GradientCompression> compression) {
  TERSE_CHECK(num_ready_ == 0 && work_.empty(), InvalidArgument, "set_compression during a step (",
              num_ready_,
              " gradients already marked ready); call it before backward or after finish()");
  compression_ = std::move(compression);
}

void DataParallel::set_exchange_enabled(bool enabled) {
  TERSE_CHECK(num_ready_ == 0 && work_.empty(), InvalidArgument, "set_exchange_enabled(",
              enabled ? "true" : "false", ") during a step (", num_ready_,
              " gradients already marked ready); call it before backward or after finish()");
  exchange_enabled_ = enabled;
}

void DataParallel::zero_grad() {
  for (auto& s : storage_) std::fill(s.begin(), s.end(), 0);
  for (auto& d : device_storage_) cuda_zero(d.data(), d.bytes());
}

void DataParallel::divide_by_world() {
  const float n = static_cast<float>(comm_.size());
  for (size_t b = 0; b < storage_.size(); ++b) {
    if (device_.is_cuda() && !stage_) {
      cuda_divide(bucket_view(b), n);
      continue;
    }
    const TensorView v = host_bucket_view(b);
    dispatch_floating(v.dtype, [&](auto tag) {
      using T = decltype(tag);
      T* p = static_cast<T*>(v.data);
      for (int64_t i = 0; i < v.numel; ++i) store_from_float(p, i, load_as_float(p, i) / n);
    });
    if (stage_) copy_to_device(b);
  }
}

CommStats DataParallel::finish() {
  const auto t0 = Clock::now();
  size_t missing = params_.size();
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!ready_[i]) {
      missing = i;
      break;
    }
  }
  // Reset before anything can throw, so the engine is usable for the next step either way.
  const auto reset = [this] {
    ready_.assign(params_.size(), false);
    for (size_t b = 0; b < pending_.size(); ++b) pending_[b] = plan_.buckets()[b].params.size();
    next_launch_ = 0;
    num_ready_ = 0;
  };
  if (missing != params_.size()) {
    reset();
    try {
      drain();
    } catch (...) {
      work_.clear();
    }
    comm_seconds_ = 0;
    TERSE_THROW(InvalidArgument, "parameter ", param_label(params_[missing], missing),
                " got no gradient in this step; every parameter must be marked ready once per "
                "step (unused parameters are not supported: remove them or give them a gradient)");
  }
  reset();
  if (!exchange_enabled_) {
    // Nothing was launched (mark_ready does not start collectives while disabled).
    comm_seconds_ = 0;
    return CommStats{};
  }
  if (compression_) {
    comm_seconds_ = 0;
    // An exchange that runs where the gradients are (DGC on the GPU) takes them in place.
    if (device_.is_cpu() || compression_->device() == device_) {
      return compression_->exchange(params_);
    }
    const auto t_stage = Clock::now();
    for (size_t b = 0; b < storage_.size(); ++b) copy_to_host(b);
    double stage_s = seconds_since(t_stage);
    CommStats stats = compression_->exchange(host_params_);
    const auto t_back = Clock::now();
    for (size_t b = 0; b < storage_.size(); ++b) copy_to_device(b);
    stage_s += seconds_since(t_back);
    stats.time_compress_s += stage_s;
    return stats;
  }
  try {
    drain();
  } catch (...) {
    work_.clear();
    comm_seconds_ = 0;
    throw;
  }
  if (comm_.size() > 1) divide_by_world();
  const double comm_s = comm_seconds_ + seconds_since(t0);
  CommStats stats;
  stats.bytes_sent = bytes_sent_per_step_;
  stats.bytes_dense = bytes_dense_per_step_;
  stats.payload_bytes = payload_per_step_;
  stats.payload_dense_bytes = payload_dense_per_step_;
  stats.time_comm_s = comm_s;
  comm_seconds_ = 0;
  return stats;
}

}  // namespace terse

#include "terse/train/data_parallel.h"

#include <chrono>
#include <cstring>

#include "terse/core/check.h"
#include "terse/core/dispatch.h"

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
    TERSE_CHECK(p.value.device.is_cpu(), InvalidArgument, "parameter ", param_label(p, i),
                " lives on ", p.value.device.str(),
                "; the data-parallel engine keeps gradient buckets on the CPU only");
    infos.push_back(BucketPlan::ParamInfo{p.value.numel, p.value.dtype});
  }
  return infos;
}

}  // namespace

DataParallel::DataParallel(Communicator& comm, std::vector<Param> params, double bucket_mb)
    : comm_(comm), params_(std::move(params)), plan_(infos_of(params_), bucket_mb) {
  const auto& buckets = plan_.buckets();
  storage_.resize(buckets.size());
  uint64_t total_numel = 0;
  pending_.resize(buckets.size());
  for (size_t b = 0; b < buckets.size(); ++b) {
    storage_[b].assign((buckets[b].nbytes() + 7) / 8, 0);
    pending_[b] = buckets[b].params.size();
    bytes_sent_per_step_ += ring_bytes(buckets[b].nbytes(), comm_.size());
    payload_per_step_ += buckets[b].nbytes();
    total_numel += static_cast<uint64_t>(buckets[b].numel);
  }
  bytes_dense_per_step_ = ring_bytes(total_numel * sizeof(float), comm_.size());
  payload_dense_per_step_ = total_numel * sizeof(float);
  for (size_t i = 0; i < params_.size(); ++i) {
    const BucketSlot& s = plan_.slot(i);
    params_[i].grad = bucket_view(s.bucket).slice(s.offset, s.numel);
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
  TERSE_CHECK(b < storage_.size(), InvalidArgument, "bucket index ", b,
              " is out of range; the engine has ", storage_.size(), " buckets");
  const Bucket& bucket = plan_.buckets()[b];
  // The view is non-owning; the engine keeps the storage alive and unmoved.
  void* data = const_cast<uint64_t*>(storage_[b].data());
  return TensorView(data, bucket.numel, bucket.dtype);
}

void DataParallel::broadcast_parameters() {
  // Not timed into comm_seconds_: that belongs to the next step's finish(), and a broadcast
  // before training (which waits for the last rank to start) is no step's communication. It
  // made the first step's time_comm_s exceed its wall time.
  for (const Param& p : params_) {
    if (p.value.numel > 0) comm_.broadcast(p.value, 0);
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
    work_.push_back(comm_.all_reduce_async(bucket_view(next_launch_), ReduceOp::kSum));
    ++next_launch_;
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
    return compression_->exchange(params_);
  }
  try {
    drain();
  } catch (...) {
    work_.clear();
    comm_seconds_ = 0;
    throw;
  }
  const double comm_s = comm_seconds_ + seconds_since(t0);
  const int world = comm_.size();
  if (world > 1) {
    for (size_t b = 0; b < storage_.size(); ++b) {
      const TensorView v = bucket_view(b);
      dispatch_floating(v.dtype, [&](auto tag) {
        using T = decltype(tag);
        T* p = static_cast<T*>(v.data);
        const float n = static_cast<float>(world);
        for (int64_t i = 0; i < v.numel; ++i) store_from_float(p, i, load_as_float(p, i) / n);
      });
    }
  }
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

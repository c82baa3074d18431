#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "terse/comm/communicator.h"
#include "terse/comm/work.h"
#include "terse/optim/param.h"
#include "terse/train/bucket_plan.h"
#include "terse/train/comm_stats.h"
#include "terse/train/gradient_compression.h"

namespace terse {

// The data-parallel gradient engine. Gradients live in one flat buffer per bucket (see
// BucketPlan); params()[i].grad points into it, so the optimizer reads the averaged gradient
// in place. Per step: the producer (an autograd hook) writes parameter i's gradient into
// params()[i].grad and calls mark_ready(i); once a bucket and all buckets before it are ready
// their all-reduces start, overlapping the rest of backward; finish() waits for all of them,
// divides by the world size and re-arms the engine for the next step.
// Not thread-safe: one thread per rank calls mark_ready and finish.
class DataParallel {
 public:
  // `params[i].value` is what broadcast_parameters() sends; any `grad` given is ignored and
  // replaced by a view into the bucket buffers. Throws InvalidArgument for a bad bucket_mb,
  // a non-floating dtype or a value view whose size does not match its shape.
  DataParallel(Communicator& comm, std::vector<Param> params, double bucket_mb);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // Copies rank 0's parameter values to every rank.
  void broadcast_parameters();

  // Parameter `index`'s gradient has been written into params()[index].grad. Throws
  // InvalidArgument for an index out of range or a parameter marked twice in one step.
  void mark_ready(size_t index);

  // Waits for every bucket's all-reduce (each with the communicator's timeout), divides by
  // the world size and resets readiness. Throws InvalidArgument naming the first parameter
  // that was never marked ready (after draining the collectives already started), Timeout or
  // CommError from the communicator.
  CommStats finish();

  // Replaces the overlapped dense all-reduce by a compressed exchange that runs in finish()
  // (nullptr restores the dense path). Call between steps; see make_gradient_compression.
  void set_compression(std::unique_ptr<GradientCompression> compression);
  GradientCompression* compression() const { return compression_.get(); }

  // With `enabled` false the next steps' gradients are not exchanged at all: hooks still fill
  // the buckets and mark_ready() still checks them, but no collective starts, and finish() only
  // checks and re-arms the engine and returns zero CommStats, leaving each rank's local gradient
  // in params()[i].grad. For optimizers that communicate themselves (1-bit Adam's compression
  // phase). Default true. Call between steps (InvalidArgument during a step).
  void set_exchange_enabled(bool enabled);
  bool exchange_enabled() const { return exchange_enabled_; }

  // Sets every gradient to zero (for producers that accumulate rather than overwrite).
  void zero_grad();

  const std::vector<Param>& params() const { return params_; }
  const BucketPlan& plan() const { return plan_; }
  // The flat gradient buffer of bucket `b`.
  TensorView bucket_view(size_t b) const;
  Communicator& comm() const { return comm_; }
  // Number of parameters marked ready since the last finish().
  size_t num_ready() const { return num_ready_; }

 private:
  void launch_ready_buckets();
  void drain();

  Communicator& comm_;
  std::vector<Param> params_;
  BucketPlan plan_;
  // 8-byte words so every bucket is aligned for any floating dtype.
  std::vector<std::vector<uint64_t>> storage_;
  std::vector<bool> ready_;
  std::vector<size_t> pending_;  // per bucket: parameters not yet marked ready
  std::vector<std::unique_ptr<Work>> work_;
  size_t next_launch_ = 0;
  size_t num_ready_ = 0;
  double comm_seconds_ = 0;
  uint64_t bytes_sent_per_step_ = 0;
  uint64_t bytes_dense_per_step_ = 0;
  uint64_t payload_per_step_ = 0;
  uint64_t payload_dense_per_step_ = 0;
  std::unique_ptr<GradientCompression> compression_;
  bool exchange_enabled_ = true;
};

}  // namespace terse

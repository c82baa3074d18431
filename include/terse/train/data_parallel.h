#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "terse/comm/communicator.h"
#include "terse/comm/work.h"
#include "terse/core/device.h"
#include "terse/kernels/cuda_buffer.h"
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
//
// On the GPU: when the parameters are CUDA tensors (all on one device) the buckets live in that
// GPU's memory, so the optimizer steps on the GPU. A communicator of that device (NCCL)
// all-reduces them in place; a host one (MPI, local) gets each bucket copied to a host mirror
// as it fills and back after the all-reduce. A compressed exchange built over params() (one that
// runs on the GPU: DGC) takes the GPU buckets in place; one built over exchange_params() runs on
// the host mirror, the copies counted as its compression time. Everything on the GPU is
// ordered through the legacy default stream, where libtorch runs backward.
class DataParallel {
 public:
  // `params[i].value` is what broadcast_parameters() sends; any `grad` given is ignored and
  // replaced by a view into the bucket buffers. Throws InvalidArgument for a bad bucket_mb,
  // a non-floating dtype, a value view whose size does not match its shape, parameters on
  // different devices, or a GPU communicator on another device than the parameters.
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
  // The exchange is built over params() when it runs on the parameters' device
  // (gradient_compression_on_gpu), else over exchange_params(); with a host communicator.
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
  // What a compressed exchange sees: params() for CPU parameters; for CUDA ones the same list
  // with each grad a view of the host mirror of its bucket.
  const std::vector<Param>& exchange_params() const { return host_params_; }
  // Where the parameters and the buckets are.
  Device device() const { return device_; }
  const BucketPlan& plan() const { return plan_; }
  // The flat gradient buffer of bucket `b` (on device()).
  TensorView bucket_view(size_t b) const;
  Communicator& comm() const { return comm_; }
  // Number of parameters marked ready since the last finish().
  size_t num_ready() const { return num_ready_; }

 private:
  void launch_ready_buckets();
  void drain();
  // The host copy of bucket `b`: the bucket itself for CPU parameters, else its mirror.
  TensorView host_bucket_view(size_t b) const;
  // CUDA parameters only: bucket b's bytes from the GPU to the mirror, and back.
  void copy_to_host(size_t b);
  void copy_to_device(size_t b);
  void divide_by_world();

  Communicator& comm_;
  std::vector<Param> params_;
  BucketPlan plan_;
  Device device_;
  // Through a host mirror: CUDA parameters and a communicator of host memory.
  bool stage_ = false;
  // The buckets on the host (CPU parameters), or their mirrors (CUDA ones): 8-byte words so
  // every bucket is aligned for any floating dtype.
  std::vector<std::vector<uint64_t>> storage_;
  std::vector<CudaBuffer> device_storage_;  // the buckets of CUDA parameters
  std::vector<Param> host_params_;
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

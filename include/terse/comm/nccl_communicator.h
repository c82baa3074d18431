#pragma once

#include <memory>
#include <string>

#include "terse/comm/communicator.h"

namespace terse {

// The NCCL backend: GPU collectives, one rank per GPU. Every verb takes CUDA TensorViews on the
// communicator's device() (f32, bf16, f16, f64, i32, i64, u8); a view on the host or on another
// GPU is InvalidArgument. The job is started by mpirun: rank and size are MPI_COMM_WORLD's, and
// rank 0's ncclUniqueId is broadcast over MPI (MPI is initialised if needed). Ordering with the
// caller's GPU work goes through the legacy default stream: a collective starts after the
// kernels already enqueued there, and after Work::wait() (or a test() that returns true) kernels
// enqueued there see its result. The collective itself runs on the communicator's own stream,
// so kernels enqueued on the default stream between the call and wait() overlap with it.
// A wait past the timeout, or an error NCCL reports while a collective runs, aborts the NCCL
// communicator (ncclCommAbort): that wait throws Timeout / CommError and every later call on
// the communicator throws CommError; make a new one on every rank.
struct NcclOptions {
  // The CUDA device of this rank; -1 picks the local rank (OMPI_COMM_WORLD_LOCAL_RANK) modulo
  // the number of visible devices, so a launcher that gives each rank its own
  // CUDA_VISIBLE_DEVICES works too. Two ranks on one GPU are InvalidArgument on every rank.
  int device = -1;
};

// Throws InvalidArgument when terse was built without NCCL (saying how to build with it), when
// this node runs more ranks than it has GPUs or two ranks chose one GPU, or when the device is
// out of range; CudaError / CommError / Timeout when CUDA, MPI or NCCL fail during set-up. A
// rank that fails makes every rank throw: the ranks agree over MPI before NCCL is touched.
std::unique_ptr<Communicator> make_nccl_communicator(const NcclOptions& options = NcclOptions());

// True when this build has the NCCL backend (a GPU may still be missing at run time).
bool nccl_available();
// "2.28.9" from ncclGetVersion (the library loaded, not the header built against); "" when
// terse was built without NCCL.
std::string nccl_library_version();

}  // namespace terse

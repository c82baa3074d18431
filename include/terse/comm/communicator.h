#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "terse/comm/reduce_op.h"
#include "terse/comm/work.h"
#include "terse/core/tensor_view.h"

namespace terse {

// The transport: rank, size and the collective verbs. Backends (MPI, local threads, NCCL) are
// chosen at run time. Collective Algorithms (dense, sparse all-gather, ...) are built
// only on these verbs. Every rank must call the same verbs in the same order with matching
// dtypes and sizes; the *_async forms return a Work, the plain forms wait with timeout().
class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "mpi", "local", "nccl"
  virtual const char* backend() const = 0;
  // Where the verbs' buffers live: the CPU for "mpi" and "local", this rank's GPU for "nccl".
  virtual Device device() const { return Device::cpu(); }

  // In place: every rank ends with op over all ranks' `inout`.
  virtual std::unique_ptr<Work> all_reduce_async(TensorView inout, ReduceOp op) = 0;
  // out.numel == size() * in.numel; rank r's `in` lands at out[r * in.numel ...].
  virtual std::unique_ptr<Work> all_gather_async(TensorView in, TensorView out) = 0;
  // Rank r contributes counts[r] elements (in.numel == counts[rank()]); out holds them in rank
  // order, out.numel == sum(counts).
  virtual std::unique_ptr<Work> all_gatherv_async(TensorView in, TensorView out,
                                                  const std::vector<int64_t>& counts) = 0;
  // in and out hold size() equal chunks; chunk j of `in` goes to rank j, chunk i of `out`
  // comes from rank i.
  virtual std::unique_ptr<Work> all_to_all_async(TensorView in, TensorView out) = 0;
  // send_counts[j] elements go to rank j (packed in rank order in `in`); recv_counts[i]
  // elements come from rank i (packed in rank order in `out`).
  virtual std::unique_ptr<Work> all_to_allv_async(TensorView in,
                                                  const std::vector<int64_t>& send_counts,
                                                  TensorView out,
                                                  const std::vector<int64_t>& recv_counts) = 0;
  virtual std::unique_ptr<Work> broadcast_async(TensorView inout, int root) = 0;
  virtual std::unique_ptr<Work> barrier_async() = 0;

  void all_reduce(TensorView inout, ReduceOp op = ReduceOp::kSum);
  void all_gather(TensorView in, TensorView out);
  void all_gatherv(TensorView in, TensorView out, const std::vector<int64_t>& counts);
  void all_to_all(TensorView in, TensorView out);
  void all_to_allv(TensorView in, const std::vector<int64_t>& send_counts, TensorView out,
                   const std::vector<int64_t>& recv_counts);
  void broadcast(TensorView inout, int root);
  void barrier();

  // Deadline for every blocking wait. Default: TERSE_TIMEOUT_S from the environment, else 60 s.
  std::chrono::milliseconds timeout() const { return timeout_; }
  void set_timeout(std::chrono::milliseconds timeout);

 protected:
  Communicator();

 private:
  std::chrono::milliseconds timeout_;
};

// "mpi" (initialises MPI if needed), "nccl" (one rank per GPU, see nccl_communicator.h) or
// "local" (single rank). Throws InvalidArgument for an unknown or unavailable backend, saying
// how to get it.
std::unique_ptr<Communicator> make_communicator(const std::string& backend);
bool mpi_available();
// True when this process was started by mpirun/mpiexec (OMPI_COMM_WORLD_SIZE, PMI_SIZE,
// PMIX_RANK).
bool launched_under_mpi();
// This rank's index among the ranks of its node: OMPI_COMM_WORLD_LOCAL_RANK (Open MPI), else
// MPI_LOCALRANKID (MPICH's hydra); -1 when neither is set (not started by a launcher).
int local_rank();
// Ranks of this job on this node (OMPI_COMM_WORLD_LOCAL_SIZE, else 1): for sizing thread pools.
int local_rank_count();
// The first line of MPI_Get_library_version ("Open MPI v4.1.4, ..."); "" when terse was built
// without MPI.
std::string mpi_library_version();
// Ends the whole job: MPI_Abort(MPI_COMM_WORLD, code) when MPI is initialised, so a failing rank
// takes the others down instead of leaving them blocked in a collective; else std::exit(code).
[[noreturn]] void abort_job(int code);

}  // namespace terse

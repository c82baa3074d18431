#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "terse/comm/algorithms/algorithm.h"
#include "terse/core/device.h"
#include "terse/core/state_dict.h"

namespace terse {

// One gradient as a row-major rows x cols f32 matrix (a 1-D tensor is 1 x numel; a conv weight
// out x (in*kh*kw), as torch's hook views it), in host memory or in the memory of a CUDA device.
// A view, not owned.
struct MatrixView {
  float* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  Device device = Device::cpu();
};

struct PowerSgdReport : AlgorithmReport {
  // path: "powersgd" when at least one matrix was compressed, else "dense" (warm-up steps, or no
  // matrix qualifies).
  int64_t compressed_matrices = 0;
  // Elements of the tensors that went dense (all of them on a dense step).
  int64_t dense_elements = 0;
  // This rank's contribution: 4 (rows + cols) r' per compressed matrix + 4 numel per dense
  // tensor (what a parameter server would receive from it; bytes_sent models the ring).
  uint64_t payload_bytes = 0;
  // Compressed steps only (0 on dense ones, where nothing can be told apart):
  // seconds in the local passes (M + e, the products, Gram-Schmidt, P Q^T and e), and seconds
  // in the first collective, the verdicts (and, on the first call, the shape check before
  // them): a few bytes that return only when the slowest rank has computed its P, so waiting
  // for stragglers, not moving data. The rest of the call is the all-reduces of P and Q.
  double compress_s = 0;
  double wait_s = 0;
};

// PowerSGD (Vogels, Karimireddy, Jaggi, "PowerSGD: Practical Low-Rank Gradient Compression for
// Distributed Optimization", NeurIPS 2019) as PyTorch's DDP hook powerSGD_hook does it
// (specs/compression.md §4, docs/collectives.md "PowerSGD"). For every matrix M (n x m) with
// r' = min(n, m, rank) and (n + m) r' min_compression_rate < n m, on every rank:
//   M <- M + e                                   (error feedback; e = 0 the first time)
//   Q <- Q of the previous step (warm start), or the first time (every step without warm
//        start; or when the previous Q has an all-zero column, where torch stays stuck at 0)
//        N(0, 1) from power_sgd_random_q, the same on every rank; orthogonalize(Q)
//   P <- M Q;        all_reduce_sum(one verdict per rank);  all_reduce_sum(all P's)  (one fused
//                    collective);   orthogonalize(P)
//   Q <- M^T P;      all_reduce_sum(all Q's + the dense tensors)  (one fused collective);  Q /= W
//   M_hat <- P Q^T  (the average gradient's rank-r' approximation, written to the gradient)
//   e <- M - M_hat  (local input minus the global approximation)
// orthogonalize is modified Gram-Schmidt over the columns, col /= (||col|| + eps). The other
// tensors (1-D ones included) are summed in the second collective and divided by W, with no
// error feedback (their average is exact). Steps before start_iter are one fused dense
// all-reduce of everything, divided by W. Differences from torch: docs/collectives.md.
//
// On the GPU: when the views are CUDA memory (all on one device), every pass runs there
// (terse/kernels/cuda_power_sgd.h: cuBLAS products, Gram-Schmidt and the decompression as
// kernels) and Q and e live in that GPU's memory. A communicator of host memory (MPI, local)
// gets only P, Q and the dense tensors copied to the host and back, never the compressed
// matrices; one of that GPU's memory (NCCL) all-reduces them in place. The products sum in
// another order than the CPU's, so results agree with a CPU run within a tolerance, not bit for
// bit (docs/collectives.md, "On the GPU"); GPU ranks agree with each other bit for bit, so give
// every rank the same kind of device. run() returns when the GPU work is done.
class PowerSgd : public Algorithm {
 public:
  struct Options {
    // r: the approximation rank (torch matrix_approximation_rank).
    int rank = 1;
    double min_compression_rate = 2.0;
    bool error_feedback = true;
    bool warm_start = true;
    uint64_t seed = 0;
    // Steps with step < start_iter are dense (torch start_powerSGD_iter).
    int64_t start_iter = 10;
    // eps of the Gram-Schmidt normalisation (torch orthogonalization_epsilon; torch's default
    // is 0 now, 1e-8 before: 1e-8 keeps an all-zero gradient finite).
    double orthogonalization_epsilon = 1e-8;
  };

  // Throws InvalidArgument on bad options (rank < 1, min_compression_rate not finite or <= 0,
  // start_iter < 0, orthogonalization_epsilon not finite or < 0).
  PowerSgd(Communicator& comm, Options options);
  ~PowerSgd() override;

  const char* name() const override { return "powersgd"; }
  const Options& options() const { return options_; }

  // Replaces every rank's gradients by their average (dense steps) or its low-rank
  // approximation, in place. Collective: every rank passes the same shapes in the same order and
  // the same step. The first call all_gathers a signature of the shapes; a difference gives
  // InvalidArgument on every rank naming the first differing tensor. Later calls must pass the
  // same shapes (else InvalidArgument on that rank, CommError on the others). A non-finite
  // gradient on any rank gives NumericalError on every rank naming the rank and tensor, with
  // every gradient and all state left unchanged (the caller may skip the step): each rank's
  // verdict travels in the first collective, so all ranks decide together and none hangs.
  // Views on a CUDA device run the GPU passes (above); views of mixed devices, a pointer that is
  // not memory of the view's device, or host views with a communicator of GPU memory give
  // InvalidArgument (through the first collective, as any bad argument). Q and e move to the
  // device of the views when it changes.
  PowerSgdReport run(const std::vector<MatrixView>& grads, int64_t step);

  // Bytes of the persistent state: Q (m r' floats) and, with error feedback, e (n m floats)
  // per compressed matrix; 0 before the first compressed step. Work buffers not included.
  size_t state_bytes() const;
  // Where Q and e live: the CPU, or the CUDA device of the last run() with CUDA views.
  Device state_device() const;
  // Keys: "powersgd.q.<i>" (f32, shape {m, r'}), "powersgd.error.<i>" (f32, shape {n, m}) for
  // the compressed matrix at position i of run()'s list; ints "powersgd.version" (1),
  // "powersgd.rank" (r). Host copies, the same wherever the state lives, so a checkpoint moves
  // between CPU and GPU runs.
  StateDict state_dict() const;
  // Validates everything before changing anything: CorruptData on a missing or unknown
  // "powersgd." key, a wrong version, rank, dtype or size, a Q and e that disagree, or shapes
  // that differ from those run() has seen (checked at the next run() when none has been seen).
  // The state goes to where the current one lives (state_device()).
  void load_state_dict(const StateDict& s);

 private:
  struct Slot {
    int64_t rows = 0, cols = 0, r = 0;  // r = r' when compressed, 0 when dense
    // On the CPU (else in DeviceState): empty until first compressed (e: or EF off).
    std::vector<float> q;      // m x r', row-major
    std::vector<float> error;  // n x m
  };
  // The fused buffers' layout of a compressed step (power_sgd_internal.h).
  struct Layout;
  // Q, e and the work buffers on the GPU (power_sgd_internal.h).
  struct DeviceState;

  std::string check_local(const std::vector<MatrixView>& grads) const;
  void validate_shapes(const std::vector<MatrixView>& grads, const std::string& local_error);
  void plan(const std::vector<MatrixView>& grads);
  PowerSgdReport run_dense(const std::vector<MatrixView>& grads, bool send_zeros,
                           const std::string& local_error, uint64_t extra_bytes);
  PowerSgdReport run_compressed(const std::vector<MatrixView>& grads, int64_t step, bool send_zeros,
                                const std::string& local_error, uint64_t extra_bytes);
  void check_flags(const float* flags, const std::string& local_error) const;
  Layout layout() const;
  PowerSgdReport compressed_report(const Layout& l, uint64_t extra_bytes) const;
  // power_sgd_device.cc: the paths for CUDA views (or any call on a GPU communicator), and the
  // moves of Q and e between host and device.
  PowerSgdReport run_dense_device(const std::vector<MatrixView>& grads, int device, bool send_zeros,
                                  const std::string& local_error, uint64_t extra_bytes);
  PowerSgdReport run_compressed_device(const std::vector<MatrixView>& grads, int64_t step,
                                       int device, bool send_zeros, const std::string& local_error,
                                       uint64_t extra_bytes);
  void move_state(Device to);
  // Q and e of `slots` uploaded to `device`, with the carry flags computed from them.
  std::unique_ptr<DeviceState> make_device_state(const std::vector<Slot>& slots, int device) const;
  // Host copies of slot i's Q and e (empty when it has none), wherever they live.
  std::vector<float> host_q(size_t i) const;
  std::vector<float> host_error(size_t i) const;

  Options options_;
  bool validated_ = false;
  std::vector<Slot> slots_;
  // Loaded before run() has seen the shapes: checked at the first run().
  bool pending_check_ = false;
  std::vector<float> pbuf_, qbuf_, verdicts_, row_, qt_;
  // Null while Q and e live on the CPU.
  std::unique_ptr<DeviceState> dev_;
};

// A fresh Q for matrix `index` (its position in run()'s list): `count` = m r' entries N(0, 1),
// row-major, by Box-Muller over Philox4x32 (key seed; stream index + 2^32 (step_key + 1);
// counter = block of 4 entries), so it is the same on every rank. step_key is -1 with warm start
// (one draw per matrix), else the step. Public so a reference implementation can reproduce it.
void power_sgd_random_q(uint64_t seed, uint64_t index, int64_t step_key, float* q, int64_t count);

}  // namespace terse

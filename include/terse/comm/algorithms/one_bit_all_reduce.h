#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "terse/comm/algorithms/algorithm.h"
#include "terse/core/state_dict.h"
#include "terse/core/tensor_view.h"
#include "terse/kernels/cuda_buffer.h"

namespace terse {

struct OneBitAllReduceReport : AlgorithmReport {
  // Bytes this rank handed to the communicator in this call (signs and scales of both phases):
  // the measured message bytes, not a model.
  uint64_t payload_bytes = 0;
  // Number of collectives issued (4: all-to-all + all-gather of scales, all-gather of server
  // signs + all-gather of server scales), whatever the number of tensors in the flat buffer;
  // with Options::pairwise the sign exchanges are W - 1 rounds each: 2 + 2 (W - 1).
  int collectives = 0;
  // Wall seconds of the CPU passes that run outside every collective (the norm and sign pass,
  // the server sum, the final unpacking with the deferred worker error update): compression, not
  // communication. The rest of the call is communication, including the error updates that run
  // while a collective is in flight (Options::defer_worker_error).
  double compress_s = 0;
  // Wall seconds in the first collective (the worker scales' all-gather, a few bytes): it
  // returns when the slowest rank arrives, so this is waiting for stragglers, not transfer.
  double wait_s = 0;
  // Of the rest: wall seconds of the error updates that run while a collective is in flight
  // (overlap_s), and of the waits for the collectives after them (drain_s). A drain_s near 0
  // means the CPU pass, not the wire, bounds the phase.
  double overlap_s = 0;
  double drain_s = 0;
};

// The two-phase 1-bit compressed all-reduce of 1-bit Adam (Tang et al., "1-bit Adam:
// Communication Efficient Large-Scale Training with Adam's Convergence Speed", ICML 2021), as
// DeepSpeed's NcclBackend.compressed_allreduce does it (specs/compression.md §2.2). For W ranks
// and a flat f32 buffer of n elements, padded with zeros to N, a multiple of W * lcm(W, 8):
//   worker:  x = m + e_w;  s_w = ||x||_2 / sqrt(N);  e_w <- x - s_w sgn(x)   (sgn(0) = +1)
//            signs (bit 1 iff x >= 0, most significant bit first in each byte) in W chunks of
//            N / (8 W) bytes; all-to-all of the chunks (chunk j to rank j), all-gather of s_w
//   server (rank r, chunk r of N / W elements):
//            y = sum_j (s_w^j / W) unpack(bits_j) + e_s;  s_s = ||y||_2 / sqrt(N / W);
//            e_s <- y - s_s sgn(y)
//   all-gather of the server sign chunks and of s_s;  out[chunk j] = s_s^j unpack(bits of j)
// The worker error e_w (N elements) and server error e_s (N / W) persist across calls and are
// part of the state (DeepSpeed drops them on checkpoint load; terse saves and restores them).
// One call reduces one flat buffer: callers fuse every tensor into it, so a step costs four
// collectives however many tensors the model has.
// Rounding, fixed so that a single-process reference reproduces every bit: x = m + e_w in f32
// (padding: 0.0f + e_w); ||v||^2 splits v into blocks of 2^16 elements by index (the last one
// may be shorter); a block sums double(v_i)^2 (exact products) in 8 lanes, lane i mod 8 in index
// order, combined as ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)); the block values are
// added in block order, ((0 + B_0) + B_1) + ... (so a vector of <= 2^16 elements is one block);
// a scale is f32(sqrt(sum / count)) in double; c_j = s_w^j / f32(W) in f32 and y = ((0 + (+-c_0)) +
// (+-c_1)) ... + e_s in f32, ranks in order; e <- x - s for x >= 0, x + s otherwise.
// The worker scales travel as one f32 per rank; a rank whose input is not finite sends -2 and
// one with invalid arguments sends -1 instead, so every rank learns it from the first collective
// and throws together (nobody waits for a peer that already threw).
// The element-wise passes (worker norm and signs, worker error, server sum with its norm and
// signs, server error, final decode) can run on several threads (Options::threads); work is
// split in the 2^16-element blocks above, so every output and error bit is the same for any
// thread count. The two error updates need nothing from the wire: the server's runs while the
// two server all-gathers are in flight; the worker's runs in the final decode pass, or, with
// Options::defer_worker_error off, while the all-to-all is in flight.
// On the GPU (a CUDA `inout`): the same passes as kernels (terse/kernels/cuda_one_bit_all_reduce.h)
// with the errors and the sign buffers in that GPU's memory, every output and error bit the
// CPU's (the same f32 operations; the sums of squares in the same lanes, combined on the host by
// the same code). On a communicator of GPU memory (NCCL) the signs and scales travel from GPU
// memory, in the one-call forms (Options::pairwise serves host communicators only); on a host
// communicator (MPI, local) the sign bytes (N / 8 each way) and the scales are staged through
// host buffers. The errors live where the last call's buffer was: a call on another device moves
// them there first (state_device()). Options::threads does not apply to the GPU passes.
class OneBitAllReduce : public Algorithm {
 public:
  struct Options {
    // Threads for the element-wise passes, the calling thread included (>= 1). The T - 1 extra
    // threads start on the first call that has more than one block (2^16 elements) to split
    // and sleep between passes; a buffer of one block always runs on the calling thread.
    int threads = 1;
    // Run the sign all-to-all and the server all-gather as W - 1 pairwise rounds
    // (pairwise_exchange.h) instead of one all_to_all / all_gather call each. Same bytes and the
    // same bits; it keeps W - 1 senders from targeting one receiver at once.
    bool pairwise = false;
    // Update the worker error in the decode pass, after the last collective (true), instead of
    // while the all-to-all is in flight (false). Same bits either way. Deferred, the update is
    // compression and shares the decode's read of m, and no pass longer than the server sum
    // (N / W elements) runs between the first collective and the last. Measured in
    // docs/results.md (issue 5, seventh pass): shorter training steps on 8 ranks sharing one
    // host; in the benchmark, whose ranks leave each call together, the overlap is faster.
    bool defer_worker_error = true;
  };

  // `numel`: elements of the flat buffer each call reduces (> 0, the same on every rank).
  // Throws InvalidArgument for numel <= 0 or options.threads < 1. The errors start at zero.
  OneBitAllReduce(Communicator& comm, int64_t numel);
  OneBitAllReduce(Communicator& comm, int64_t numel, Options options);
  ~OneBitAllReduce() override;
  OneBitAllReduce(const OneBitAllReduce&) = delete;
  OneBitAllReduce& operator=(const OneBitAllReduce&) = delete;

  const char* name() const override { return "onebit"; }
  int64_t numel() const { return numel_; }
  // N: numel rounded up to a multiple of W * lcm(W, 8).
  int64_t padded_numel() const { return padded_; }
  bool defers_worker_error() const { return defer_; }

  // Replaces `inout` (f32, numel elements, CPU or GPU) on every rank by the compressed average of
  // all ranks' inputs, updating the errors. Collective. Throws InvalidArgument for a wrong dtype or
  // size; NumericalError on every rank (naming the rank) when any rank's input is not finite,
  // with inout and both errors unchanged on every rank; CorruptData when a peer's scale is not
  // finite or negative; Timeout / CommError from the communicator. A CUDA inout must be memory
  // of its device and, with a communicator of GPU memory, of the communicator's device
  // (InvalidArgument otherwise); CudaError when the runtime fails.
  OneBitAllReduceReport all_reduce(TensorView inout);

  // Host copies of the worker error (padded_numel() elements) and the server error
  // (padded_numel() / W), wherever they live.
  std::vector<float> worker_error() const;
  std::vector<float> server_error() const;
  void reset_errors();
  // Where the errors live: the CPU until a call passes a CUDA buffer, then that GPU.
  Device state_device() const;
  // Bytes of the two errors: 4 (N + N / W).
  size_t state_bytes() const;

  // Tensors "<prefix>worker_error" and "<prefix>server_error" (f32, host copies wherever the
  // errors live). load_state_dict checks names, dtypes and sizes (a checkpoint of another world
  // size or buffer size gives InvalidArgument naming both sizes), leaves the errors unchanged on
  // any error, and loads them where they live (state_device()).
  StateDict state_dict(const std::string& prefix) const;
  void load_state_dict(const StateDict& state, const std::string& prefix);

 private:
  struct DeviceState;
  OneBitAllReduceReport all_reduce_host(TensorView inout, const std::string& arg_error);
  OneBitAllReduceReport all_reduce_device(TensorView inout);
  // Moves the errors to `to` (host copies on the way between GPUs), sizing the scratch there.
  void move_state(Device to);
  // Sizes the host scratch: for the CPU passes (`passes`), else only the sign buffers that a
  // host communicator needs to stage the GPU path's bytes.
  void size_host_scratch(bool passes);

  int64_t numel_;
  int64_t padded_;
  bool pairwise_;
  bool defer_;
  std::vector<float> worker_error_;
  std::vector<float> server_error_;
  // Scratch, sized on the first call (size_host_scratch) so later calls allocate nothing: this
  // rank's signs (N / 8 bytes, chunk j for rank j), the W chunks received in phase 1 (N / 8), the
  // server chunk y (N / W floats) and its signs (N / (8 W) bytes), every server's signs (N / 8),
  // and the gathered worker and server scales (W each).
  std::vector<uint8_t> signs_;
  std::vector<uint8_t> received_;
  std::vector<float> server_sum_;
  std::vector<uint8_t> server_signs_;
  std::vector<uint8_t> gathered_signs_;
  std::vector<float> worker_scales_;
  std::vector<float> server_scales_;
  // The server's per-rank weights s_w^j / W as f32 bits (W), and one sum of squares per norm
  // block (N / 2^16 rounded up), written by whichever thread owns the block.
  std::vector<uint32_t> server_c_bits_;
  std::vector<double> block_sums_;
  class Pool;
  std::unique_ptr<Pool> pool_;
  // The errors and scratch on the GPU (state_device() is CUDA; the host errors are then empty).
  std::unique_ptr<DeviceState> dev_;
  // Two floats of GPU memory for the first collective on a GPU communicator when this rank's
  // buffer is on the host (it only sends its bad-arguments flag then).
  CudaBuffer flag_staging_;
};

// N for `numel` elements on `world_size` ranks: numel rounded up to a multiple of
// world_size * lcm(world_size, 8). Throws InvalidArgument for numel <= 0 or world_size <= 0.
int64_t one_bit_padded_numel(int64_t numel, int world_size);

// Bytes of one call's messages under the ring model of docs/collectives.md, for W ranks and a
// buffer of `numel` elements: 2 (W - 1) N / (8 W) sign bytes + 2 (W - 1) 4 scale bytes.
uint64_t one_bit_all_reduce_bytes(int64_t numel, int world_size);

}  // namespace terse

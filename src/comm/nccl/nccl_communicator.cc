// NCCL backend: one rank per GPU, rank 0's ncclUniqueId broadcast over MPI, every collective on
// the communicator's own stream, ordered after and before the caller's work on the legacy
// default stream by events (see include/terse/comm/nccl_communicator.h).

#include "terse/comm/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../comm_util.h"
#include "nccl_bootstrap.h"
#include "nccl_state.h"
#include "nccl_util.h"
#include "nccl_work.h"
#include "terse/core/check.h"

namespace terse {

namespace nccl {

namespace {

const uint8_t* bytes_of(const TensorView& v) { return static_cast<const uint8_t*>(v.data); }

bool overlap(const TensorView& a, const TensorView& b) {
  if (a.numel == 0 || b.numel == 0) return false;
  return bytes_of(a) < bytes_of(b) + b.nbytes() && bytes_of(b) < bytes_of(a) + a.nbytes();
}

// A device buffer allocated and freed in stream order on the communicator's stream.
class StreamScratch {
 public:
  StreamScratch(size_t bytes, cudaStream_t stream, const std::string& context) : stream_(stream) {
    cuda_check(cudaMallocAsync(&ptr_, bytes, stream_), "cudaMallocAsync", context);
  }
  ~StreamScratch() {
    if (ptr_ != nullptr) cudaFreeAsync(ptr_, stream_);
  }
  StreamScratch(const StreamScratch&) = delete;
  StreamScratch& operator=(const StreamScratch&) = delete;
  uint8_t* get() const { return static_cast<uint8_t*>(ptr_); }

 private:
  cudaStream_t stream_;
  void* ptr_ = nullptr;
};

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(const NcclOptions& options) {
    const NcclBootstrap boot = bootstrap_nccl(options.device, timeout());
    state_ = std::make_shared<NcclState>(boot.rank, boot.size, boot.device, timeout());
    DeviceGuard guard(boot.device);
    state_->create_cuda_objects();
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    // Non-blocking, so that set-up and every group launch can be bounded by timeout() and
    // aborted; a blocking ncclCommInitRank waits forever for a peer that never comes.
    config.blocking = 0;
    ncclComm_t comm = nullptr;
    const ncclResult_t r = ncclCommInitRankConfig(&comm, boot.size, boot.id, boot.rank, &config);
    state_->comm = comm;
    state_->settle(r, "ncclCommInitRankConfig", "the NCCL communicator", timeout(),
                   "; on one host with NVSwitch, NCCL_NVLS_ENABLE=0 skips the NVLink SHARP "
                   "set-up");
  }

  int rank() const override { return state_->rank; }
  int size() const override { return state_->size; }
  const char* backend() const override { return "nccl"; }
  Device device() const override { return Device::cuda(state_->device); }

  std::unique_ptr<Work> all_reduce_async(TensorView inout, ReduceOp op) override {
    detail::check_all_reduce(inout, op, rank(), device());
    check_memory(inout, "all_reduce", "inout");
    const std::string what = describe("all_reduce " + std::string(reduce_op_name(op)), inout);
    return launch(what, [&](cudaStream_t s) {
      if (inout.numel == 0) return;
      call(ncclAllReduce(inout.data, inout.data, static_cast<size_t>(inout.numel),
                         nccl_type(inout.dtype), nccl_op(op), comm(), s),
           "ncclAllReduce", what);
    });
  }

  std::unique_ptr<Work> all_gather_async(TensorView in, TensorView out) override {
    detail::check_all_gather(in, out, rank(), size(), device());
    check_memory(in, "all_gather", "in");
    check_memory(out, "all_gather", "out");
    // NCCL's in-place form: `in` is exactly this rank's chunk of `out`.
    const bool in_place =
        in.numel > 0 && bytes_of(in) == bytes_of(out) + static_cast<size_t>(rank()) * in.nbytes();
    check_no_alias(in_place || !overlap(in, out), "all_gather");
    const std::string what = describe("all_gather", out);
    return launch(what, [&](cudaStream_t s) {
      if (in.numel == 0) return;
      call(ncclAllGather(in.data, out.data, static_cast<size_t>(in.numel), nccl_type(in.dtype),
                         comm(), s),
           "ncclAllGather", what);
    });
  }

  // One ncclBroadcast per rank in a group, rather than grouped send/recv: each block travels
  // NCCL's broadcast ring/tree, so every rank sends and receives about sum(counts) elements
  // whatever the size (as a ring all-gather), instead of each root pushing its block to N - 1
  // peers itself; it is also how torch's ProcessGroupNCCL gathers uneven sizes.
  std::unique_ptr<Work> all_gatherv_async(TensorView in, TensorView out,
                                          const std::vector<int64_t>& counts) override {
    detail::check_all_gatherv(in, out, counts, rank(), size(), device());
    check_memory(in, "all_gatherv", "in");
    check_memory(out, "all_gatherv", "out");
    std::vector<size_t> offsets(counts.size(), 0);
    for (size_t r = 1; r < counts.size(); ++r) {
      offsets[r] = offsets[r - 1] + static_cast<size_t>(counts[r - 1]) * dtype_size(out.dtype);
    }
    const size_t me = static_cast<size_t>(rank());
    const bool in_place = in.numel > 0 && bytes_of(in) == bytes_of(out) + offsets[me];
    check_no_alias(in_place || !overlap(in, out), "all_gatherv");
    const std::string what = describe("all_gatherv", out);
    return launch(what, [&](cudaStream_t s) {
      GroupGuard group;
      call(group.start(), "ncclGroupStart", what);
      uint8_t* base = static_cast<uint8_t*>(out.data);
      for (size_t r = 0; r < counts.size(); ++r) {
        if (counts[r] == 0) continue;
        const void* send = r == me ? in.data : base + offsets[r];
        call(ncclBroadcast(send, base + offsets[r], static_cast<size_t>(counts[r]),
                           nccl_type(out.dtype), static_cast<int>(r), comm(), s),
             "ncclBroadcast", what);
      }
      call(group.end(), "ncclGroupEnd", what);
    });
  }

  std::unique_ptr<Work> all_to_all_async(TensorView in, TensorView out) override {
    detail::check_all_to_all(in, out, rank(), size(), device());
    check_memory(in, "all_to_all", "in");
    check_memory(out, "all_to_all", "out");
    const std::string what = describe("all_to_all", in);
    const int64_t chunk = in.numel / size();
    std::vector<int64_t> counts(static_cast<size_t>(size()), chunk);
    return launch(what, [&](cudaStream_t s) {
      if (chunk == 0) return;
      // In place (or overlapping), a send could read a chunk a receive has already written:
      // send from a copy instead.
      std::unique_ptr<StreamScratch> copy;
      const void* send = in.data;
      if (overlap(in, out)) {
        copy = std::make_unique<StreamScratch>(in.nbytes(), s, "for " + what);
        cuda_check(cudaMemcpyAsync(copy->get(), in.data, in.nbytes(), cudaMemcpyDeviceToDevice, s),
                   "cudaMemcpyAsync", "staging the in-place " + what);
        send = copy->get();
      }
      send_recv(send, counts, out.data, counts, out.dtype, what, s);
    });
  }

  std::unique_ptr<Work> all_to_allv_async(TensorView in, const std::vector<int64_t>& send_counts,
                                          TensorView out,
                                          const std::vector<int64_t>& recv_counts) override {
    detail::check_all_to_allv(in, send_counts, out, recv_counts, rank(), size(), device());
    check_memory(in, "all_to_allv", "in");
    check_memory(out, "all_to_allv", "out");
    TERSE_CHECK(!overlap(in, out), InvalidArgument, "all_to_allv on rank ", rank(),
                ": in and out overlap; pass separate buffers");
    const std::string what = describe("all_to_allv", in);
    return launch(what, [&](cudaStream_t s) {
      send_recv(in.data, send_counts, out.data, recv_counts, in.dtype, what, s);
    });
  }

  std::unique_ptr<Work> broadcast_async(TensorView inout, int root) override {
    detail::check_broadcast(inout, root, rank(), size(), device());
    check_memory(inout, "broadcast", "inout");
    const std::string what = describe("broadcast", inout) + " from rank " + std::to_string(root);
    return launch(what, [&](cudaStream_t s) {
      if (inout.numel == 0) return;
      call(ncclBroadcast(inout.data, inout.data, static_cast<size_t>(inout.numel),
                         nccl_type(inout.dtype), root, comm(), s),
           "ncclBroadcast", what);
    });
  }

  // A one-element all-reduce: it completes on a rank only once every rank has entered it.
  std::unique_ptr<Work> barrier_async() override {
    const std::string what = "barrier";
    return launch(what, [&](cudaStream_t s) {
      call(ncclAllReduce(state_->barrier_word, state_->barrier_word, 1, ncclFloat32, ncclSum,
                         comm(), s),
           "ncclAllReduce", what);
    });
  }

 private:
  ncclComm_t comm() const { return state_->comm; }

  void call(ncclResult_t result, const char* fn, const std::string& what) {
    state_->settle(result, fn, what, timeout());
  }

  std::string describe(const std::string& verb, const TensorView& v) const {
    return verb + " of " + detail::format_bytes(v.nbytes()) + " (" + dtype_name(v.dtype) + ")";
  }

  void check_no_alias(bool ok, const char* verb) const {
    TERSE_CHECK(ok, InvalidArgument, verb, " on rank ", rank(),
                ": in overlaps out without being this rank's block of it; pass separate buffers, "
                "or in = this rank's block of out for the in-place form");
  }

  // The view's label says CUDA; this checks the pointer too, so host memory labelled cuda:N
  // gives InvalidArgument here instead of an illegal address inside an NCCL kernel.
  void check_memory(const TensorView& v, const char* verb, const char* name) const {
    if (v.numel == 0) return;
    cudaPointerAttributes attr{};
    const cudaError_t e = cudaPointerGetAttributes(&attr, v.data);
    TERSE_CHECK(e == cudaSuccess, InvalidArgument, verb, " on rank ", rank(), ": ", name, " (",
                v.str(), ") is not a CUDA pointer (cudaPointerGetAttributes: ", cuda_error_text(e),
                "); pass device memory of cuda:", state_->device);
    TERSE_CHECK(attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged,
                InvalidArgument, verb, " on rank ", rank(), ": ", name, " (", v.str(),
                ") points to host memory; NCCL moves device memory only: copy it to cuda:",
                state_->device, " or use the \"mpi\" backend");
    TERSE_CHECK(attr.type == cudaMemoryTypeManaged || attr.device == state_->device,
                InvalidArgument, verb, " on rank ", rank(), ": ", name, " (", v.str(),
                ") points into memory of cuda:", attr.device,
                " but this rank's NCCL communicator is on cuda:", state_->device,
                "; allocate it on cuda:", state_->device);
  }

  // One group of ncclSend/ncclRecv, this rank included (NCCL copies to itself), zero counts
  // skipped on both sides (the counts agree by contract).
  void send_recv(const void* in, const std::vector<int64_t>& send_counts, void* out,
                 const std::vector<int64_t>& recv_counts, DType dtype, const std::string& what,
                 cudaStream_t s) {
    const size_t es = dtype_size(dtype);
    const auto* src = static_cast<const uint8_t*>(in);
    auto* dst = static_cast<uint8_t*>(out);
    GroupGuard group;
    call(group.start(), "ncclGroupStart", what);
    size_t send_off = 0, recv_off = 0;
    for (int p = 0; p < size(); ++p) {
      const auto sc = static_cast<size_t>(send_counts[static_cast<size_t>(p)]);
      const auto rc = static_cast<size_t>(recv_counts[static_cast<size_t>(p)]);
      if (sc > 0) {
        call(ncclSend(src + send_off * es, sc, nccl_type(dtype), p, comm(), s), "ncclSend", what);
      }
      if (rc > 0) {
        call(ncclRecv(dst + recv_off * es, rc, nccl_type(dtype), p, comm(), s), "ncclRecv", what);
      }
      send_off += sc;
      recv_off += rc;
    }
    call(group.end(), "ncclGroupEnd", what);
  }

  // Enqueues on the communicator's stream after the work already on the legacy default stream,
  // then records the Work's event.
  template <typename Enqueue>
  std::unique_ptr<Work> launch(const std::string& what, Enqueue&& enqueue) {
    state_->check_usable(what);
    DeviceGuard guard(state_->device);
    const std::string ctx = "for " + what + " on " + state_->where();
    auto work = std::make_unique<NcclWork>(state_, what, timeout());
    cuda_check(cudaEventRecord(state_->ready, cudaStreamLegacy),
               "cudaEventRecord(legacy default stream)", ctx);
    cuda_check(cudaStreamWaitEvent(state_->stream, state_->ready, 0), "cudaStreamWaitEvent", ctx);
    enqueue(state_->stream);
    cuda_check(cudaEventRecord(work->done_event(), state_->stream), "cudaEventRecord", ctx);
    return work;
  }

  std::shared_ptr<NcclState> state_;
};

}  // namespace

}  // namespace nccl

std::unique_ptr<Communicator> make_nccl_communicator(const NcclOptions& options) {
  return std::make_unique<nccl::NcclCommunicator>(options);
}

bool nccl_available() { return true; }

std::string nccl_library_version() {
  int code = 0;
  if (ncclGetVersion(&code) != ncclSuccess) return "unknown";
  // NCCL_VERSION(X, Y, Z): X * 10000 + Y * 100 + Z since 2.9, X * 1000 + Y * 100 + Z before.
  const int major = code >= 10000 ? code / 10000 : code / 1000;
  const int minor = code >= 10000 ? (code % 10000) / 100 : (code % 1000) / 100;
  const int patch = code % 100;
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

}  // namespace terse

#include "terse/comm/algorithms/pairwise_exchange.h"

#include <chrono>
#include <cstring>
#include <utility>
#include <vector>

#include "terse/core/check.h"

namespace terse {

namespace {

class PairwiseWork final : public Work {
 public:
  // `gather`: every round sends all of `in`; otherwise chunk `peer` of `in`.
  PairwiseWork(Communicator& comm, TensorView in, TensorView out, bool gather)
      : comm_(comm),
        in_(in),
        out_(out),
        gather_(gather),
        chunk_(out.numel / comm.size()),
        counts_send_(static_cast<size_t>(comm.size()), 0),
        counts_recv_(static_cast<size_t>(comm.size()), 0),
        timeout_(comm.timeout()) {
    const int me = comm.rank();
    std::memcpy(out_.slice(me * chunk_, chunk_).data, send_view(me).data,
                out_.slice(0, chunk_).nbytes());
    start_next();
  }

  bool test() override {
    while (current_ != nullptr && current_->test()) start_next();
    return current_ == nullptr;
  }

  void wait(std::chrono::milliseconds timeout) override {
    // One deadline for the whole exchange, not one per round.
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (current_ != nullptr) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      current_->wait(left.count() > 0 ? left : std::chrono::milliseconds(1));
      start_next();
    }
  }

  void wait() override { wait(timeout_); }

 private:
  TensorView send_view(int peer) const { return gather_ ? in_ : in_.slice(peer * chunk_, chunk_); }

  void start_next() {
    const int w = comm_.size();
    if (round_ > 0) {
      counts_send_[static_cast<size_t>(to_)] = 0;
      counts_recv_[static_cast<size_t>(from_)] = 0;
    }
    ++round_;
    if (round_ >= w) {
      current_.reset();
      return;
    }
    const int me = comm_.rank();
    to_ = (me + round_) % w;
    from_ = (me - round_ + w) % w;
    counts_send_[static_cast<size_t>(to_)] = chunk_;
    counts_recv_[static_cast<size_t>(from_)] = chunk_;
    current_ = comm_.all_to_allv_async(send_view(to_), counts_send_,
                                       out_.slice(from_ * chunk_, chunk_), counts_recv_);
  }

  Communicator& comm_;
  TensorView in_, out_;
  bool gather_;
  int64_t chunk_;
  std::vector<int64_t> counts_send_, counts_recv_;
  std::chrono::milliseconds timeout_;
  int round_ = 0;
  int to_ = 0, from_ = 0;
  std::unique_ptr<Work> current_;
};

}  // namespace

std::unique_ptr<Work> pairwise_all_to_all_async(Communicator& comm, TensorView in, TensorView out) {
  const int w = comm.size();
  TERSE_CHECK(in.dtype == out.dtype && in.numel == out.numel && in.numel % w == 0, InvalidArgument,
              "pairwise_all_to_all on rank ", comm.rank(), ": in has ", in.numel, " ",
              dtype_name(in.dtype), " and out ", out.numel, " ", dtype_name(out.dtype),
              "; both need the same dtype and the same multiple of the world size (", w, ")");
  return std::make_unique<PairwiseWork>(comm, in, out, /*gather=*/false);
}

std::unique_ptr<Work> pairwise_all_gather_async(Communicator& comm, TensorView in, TensorView out) {
  const int w = comm.size();
  TERSE_CHECK(in.dtype == out.dtype && out.numel == in.numel * w, InvalidArgument,
              "pairwise_all_gather on rank ", comm.rank(), ": in has ", in.numel, " ",
              dtype_name(in.dtype), " and out ", out.numel, " ", dtype_name(out.dtype),
              "; out needs the same dtype and world size (", w, ") times in's elements");
  return std::make_unique<PairwiseWork>(comm, in, out, /*gather=*/true);
}

}  // namespace terse

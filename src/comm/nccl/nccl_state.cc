#include "nccl_state.h"

#include <thread>

#include "../comm_util.h"
#include "nccl_util.h"
#include "terse/core/check.h"

namespace terse::nccl {

namespace {

// Polls `done` (true when finished) until it is or `timeout` passes; false on timeout. Spins
// with yields first (collectives of a few KB finish in microseconds), then sleeps briefly.
template <typename Done>
bool poll_until(std::chrono::milliseconds timeout, Done done) {
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + timeout;
  constexpr auto kSpin = std::chrono::milliseconds(10);
  constexpr auto kPause = std::chrono::microseconds(50);
  while (!done()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    if (now - start < kSpin) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(kPause);
    }
  }
  return true;
}

}  // namespace

NcclState::NcclState(int rank_in, int size_in, int device_in,
                     std::chrono::milliseconds teardown_timeout_in)
    : rank(rank_in), size(size_in), device(device_in), teardown_timeout(teardown_timeout_in) {}

void NcclState::create_cuda_objects() {
  const std::string ctx = "while creating the NCCL communicator on " + where();
  cuda_check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate", ctx);
  cuda_check(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreate", ctx);
  void* word = nullptr;
  cuda_check(cudaMalloc(&word, sizeof(float)), "cudaMalloc(4 bytes)", ctx);
  barrier_word = static_cast<float*>(word);
  cuda_check(cudaMemset(barrier_word, 0, sizeof(float)), "cudaMemset", ctx);
}

NcclState::~NcclState() {
  if (comm != nullptr && !aborted()) {
    // Outstanding collectives first: ncclCommFinalize waits for them, and a peer that never
    // joins them would hang it.
    const bool drained = stream == nullptr || poll_until(teardown_timeout, [this] {
                           return cudaStreamQuery(stream) != cudaErrorNotReady;
                         });
    cudaGetLastError();
    bool finalized = false;
    if (drained) {
      ncclResult_t r = ncclCommFinalize(comm);
      if (r == ncclInProgress || r == ncclSuccess) {
        finalized = poll_until(teardown_timeout, [this, &r] {
          if (ncclCommGetAsyncError(comm, &r) != ncclSuccess) return true;
          return r != ncclInProgress;
        });
        finalized = finalized && r == ncclSuccess;
      }
    }
    if (finalized) {
      ncclCommDestroy(comm);
    } else {
      ncclCommAbort(comm);
    }
    comm = nullptr;
  }
  if (barrier_word != nullptr) cudaFree(barrier_word);
  if (ready != nullptr) cudaEventDestroy(ready);
  if (stream != nullptr) cudaStreamDestroy(stream);
  cudaGetLastError();
}

std::string NcclState::where() const {
  return "rank " + std::to_string(rank) + " of " + std::to_string(size) +
         " (cuda:" + std::to_string(device) + ")";
}

std::string NcclState::peers() const {
  return (size == 1 ? std::string("rank 0") : "ranks 0-" + std::to_string(size - 1)) + " of " +
         std::to_string(size);
}

void NcclState::check_usable(const std::string& what) const {
  if (!aborted()) return;
  std::lock_guard<std::mutex> lock(mutex_);
  TERSE_THROW(CommError, what, " on ", where(), ": the NCCL communicator was aborted after ",
              abort_reason_,
              "; it cannot be used again: destroy it and make a new one on every rank");
}

void NcclState::settle(ncclResult_t result, const char* call, const std::string& what,
                       std::chrono::milliseconds timeout, const char* hint) {
  if (result == ncclInProgress && comm != nullptr) {
    const bool settled = poll_until(timeout, [this, &result] {
      const ncclResult_t q = ncclCommGetAsyncError(comm, &result);
      if (q != ncclSuccess) result = q;
      return result != ncclInProgress;
    });
    if (!settled) {
      const std::string why = std::string(call) + " for " + what + " did not finish within " +
                              detail::format_seconds(static_cast<double>(timeout.count()) / 1000.0);
      abort(why);
      TERSE_THROW(Timeout, why, " on ", where(), "; it waits for ", peers(),
                  "; a rank may have died, hung or not reached this call: check every rank's "
                  "output, set NCCL_DEBUG=WARN for NCCL's view, or raise --timeout / "
                  "TERSE_TIMEOUT_S; the NCCL communicator was aborted");
    }
  }
  if (result == ncclSuccess) return;
  const std::string text = nccl_error_text(result, comm);
  const std::string why = std::string(call) + " failed for " + what + ": " + text;
  if (comm != nullptr) abort(why);
  TERSE_THROW(CommError, why, " on ", where(), " (peers: ", peers(),
              "); set NCCL_DEBUG=WARN (or INFO) for NCCL's reason, and check the other ranks' "
              "output",
              hint);
}

void NcclState::abort(const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (aborted_.load()) return;
    abort_reason_ = why;
    aborted_.store(true);
  }
  if (comm != nullptr) {
    // Frees the communicator; kernels waiting on peers return.
    ncclCommAbort(comm);
    comm = nullptr;
  }
}

}  // namespace terse::nccl

#include "nccl_work.h"

#include <thread>
#include <utility>

#include "../comm_util.h"
#include "nccl_util.h"
#include "terse/core/check.h"

namespace terse::nccl {

NcclWork::NcclWork(std::shared_ptr<NcclState> state, std::string what,
                   std::chrono::milliseconds default_timeout)
    : state_(std::move(state)), what_(std::move(what)), default_timeout_(default_timeout) {
  cuda_check(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), "cudaEventCreate",
             "for " + what_ + " on " + state_->where());
}

NcclWork::~NcclWork() {
  // Safe while the event is pending: CUDA releases it once it fires.
  if (done_ != nullptr) cudaEventDestroy(done_);
}

void NcclWork::check_async_error() {
  if (state_->comm == nullptr) return;
  ncclResult_t async = ncclSuccess;
  const ncclResult_t q = ncclCommGetAsyncError(state_->comm, &async);
  if (q != ncclSuccess) async = q;
  if (async == ncclSuccess || async == ncclInProgress) return;
  const std::string why =
      "NCCL reported " + nccl_error_text(async, state_->comm) + " while " + what_ + " ran";
  state_->abort(why);
  TERSE_THROW(CommError, why, " on ", state_->where(), " (peers: ", state_->peers(),
              "); a peer may have died or failed: check every rank's output and set "
              "NCCL_DEBUG=WARN for NCCL's reason; the NCCL communicator was aborted");
}

void NcclWork::complete() {
  DeviceGuard guard(state_->device);
  cuda_check(cudaStreamWaitEvent(cudaStreamLegacy, done_, 0), "cudaStreamWaitEvent",
             "ordering the default stream after " + what_ + " on " + state_->where());
  done_seen_ = true;
}

bool NcclWork::test() {
  if (done_seen_) return true;
  state_->check_usable(what_);
  const cudaError_t q = cudaEventQuery(done_);
  if (q == cudaErrorNotReady) {
    cudaGetLastError();
    check_async_error();
    return false;
  }
  cuda_check(q, "cudaEventQuery", "waiting for " + what_ + " on " + state_->where());
  // NCCL may flag an error even though the kernel returned (e.g. a remote error): report it
  // rather than hand back data it did not finish moving.
  check_async_error();
  complete();
  return true;
}

void NcclWork::wait(std::chrono::milliseconds timeout) {
  TERSE_CHECK(timeout.count() > 0, InvalidArgument, "wait timeout must be > 0 ms, got ",
              timeout.count(), " ms; pass a positive duration");
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + timeout;
  constexpr auto kSpin = std::chrono::milliseconds(10);
  constexpr auto kPause = std::chrono::microseconds(50);
  while (!test()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      const std::string why = what_ + " did not complete within " +
                              detail::format_seconds(static_cast<double>(timeout.count()) / 1000.0);
      // Abort so the kernels spinning on the missing peer return and the GPU is usable again.
      state_->abort(why + " (Work::wait timed out)");
      TERSE_THROW(Timeout, what_, " on ", state_->where(), " did not complete within ",
                  detail::format_seconds(static_cast<double>(timeout.count()) / 1000.0),
                  "; it waits for ", state_->peers(),
                  "; a rank may have died, hung or called a different collective: check every "
                  "rank's output, set NCCL_DEBUG=WARN, or raise --timeout / TERSE_TIMEOUT_S; the "
                  "NCCL communicator was aborted (ncclCommAbort) and cannot be used again");
    }
    if (now - start < kSpin) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(kPause);
    }
  }
}

}  // namespace terse::nccl

#pragma once

// What the NCCL communicator and its outstanding Works share: the NCCL communicator, its stream,
// the ready event and the abort state. Held by shared_ptr, so a Work outliving its communicator
// still finds a valid stream and comm (the last holder tears them down).

#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>

namespace terse::nccl {

struct NcclState {
  NcclState(int rank, int size, int device, std::chrono::milliseconds teardown_timeout);
  // Drains the stream (at most teardown_timeout) and frees the communicator
  // (ncclCommFinalize + ncclCommDestroy), or aborts it when the stream does not drain. Never
  // throws.
  ~NcclState();
  NcclState(const NcclState&) = delete;
  NcclState& operator=(const NcclState&) = delete;

  // Creates the stream (non-blocking: no implicit sync with the legacy default stream, whose
  // ordering the verbs make explicit with `ready` and each Work's event), the event and the
  // barrier word. Called with `device` current.
  void create_cuda_objects();

  // "rank 0 of 2 (cuda:0)"
  std::string where() const;
  // "ranks 0-1 of 2": every rank takes part in every NCCL collective.
  std::string peers() const;

  // Throws CommError when the communicator was aborted, quoting why.
  void check_usable(const std::string& what) const;
  // Checks the result of an NCCL call on `comm`. ncclInProgress (the communicator is
  // non-blocking: set-up and group launches finish in NCCL's background) is polled with
  // ncclCommGetAsyncError for at most `timeout`. Failure: abort() and CommError; past the
  // timeout: abort() and Timeout. Both name `call`, `what`, this rank and the peers; `hint` is
  // added to the failure's advice.
  void settle(ncclResult_t result, const char* call, const std::string& what,
              std::chrono::milliseconds timeout, const char* hint = "");
  // ncclCommAbort (once): NCCL kernels in flight return, the communicator is freed, and every
  // later use throws CommError quoting `why`.
  void abort(const std::string& why);
  bool aborted() const { return aborted_.load(); }

  const int rank;
  const int size;
  const int device;
  const std::chrono::milliseconds teardown_timeout;
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  // Recorded on the legacy default stream at every launch and waited on by `stream`.
  cudaEvent_t ready = nullptr;
  // One f32 on the device: barrier() all-reduces it.
  float* barrier_word = nullptr;

 private:
  std::atomic<bool> aborted_{false};
  mutable std::mutex mutex_;
  std::string abort_reason_;
};

}  // namespace terse::nccl

#pragma once

#include <cuda_runtime.h>

#include <chrono>
#include <memory>
#include <string>

#include "nccl_state.h"
#include "terse/comm/work.h"

namespace terse::nccl {

// One collective enqueued on the communicator's stream; done once its event has fired.
// test() and wait() poll the event and ncclCommGetAsyncError, so a peer that died or hung gives
// Timeout (after ncclCommAbort) instead of a hang. Completion (the first test() that returns
// true, or wait()) makes the legacy default stream wait on the event: kernels the caller
// enqueues there afterwards are ordered after the collective.
class NcclWork final : public Work {
 public:
  // `what`: "all_reduce of 4.1 KB (f32)", for messages. Creates the event; called with the
  // communicator's device current.
  NcclWork(std::shared_ptr<NcclState> state, std::string what,
           std::chrono::milliseconds default_timeout);
  ~NcclWork() override;
  NcclWork(const NcclWork&) = delete;
  NcclWork& operator=(const NcclWork&) = delete;

  // Recorded on the communicator's stream after the collective's NCCL calls.
  cudaEvent_t done_event() const { return done_; }

  bool test() override;
  void wait(std::chrono::milliseconds timeout) override;
  void wait() override { wait(default_timeout_); }

 private:
  // Throws CommError (after ncclCommAbort) when NCCL reports an asynchronous error.
  void check_async_error();
  // The legacy default stream waits on done_ (a no-op on the GPU once it has fired, but it
  // states the ordering instead of relying on the host having seen it).
  void complete();

  std::shared_ptr<NcclState> state_;
  std::string what_;
  std::chrono::milliseconds default_timeout_;
  cudaEvent_t done_ = nullptr;
  bool done_seen_ = false;
};

}  // namespace terse::nccl

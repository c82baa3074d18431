#pragma once

// Internal helpers of the NCCL backend: dtype and op mapping, NCCL and CUDA error text, and the
// current-device guard every entry point takes (the legacy default stream, events and streams
// belong to the device that is current when they are used).

#include <cuda_runtime.h>
#include <nccl.h>

#include <string>

#include "terse/comm/reduce_op.h"
#include "terse/core/dtype.h"

namespace terse::nccl {

ncclDataType_t nccl_type(DType dtype);
ncclRedOp_t nccl_op(ReduceOp op);

// "unhandled cuda error (ncclUnhandledCudaError): <NCCL's last message>"; `comm` may be null.
std::string nccl_error_text(ncclResult_t result, ncclComm_t comm);
// "cudaErrorInvalidDevice (invalid device ordinal)"; clears the (non-sticky) error state.
std::string cuda_error_text(cudaError_t error);

// Throws CudaError "<call> failed <context>: <error>; <hint>" unless `error` is cudaSuccess.
void cuda_check(cudaError_t error, const char* call, const std::string& context);

// Makes `device` current for its scope and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
  int device_ = -1;
};

// Closes an open ncclGroupStart when the enqueue between them throws: NCCL's group depth is per
// thread, and a group left open would swallow this thread's next NCCL calls (even on another
// communicator).
class GroupGuard {
 public:
  GroupGuard() = default;
  ~GroupGuard();
  GroupGuard(const GroupGuard&) = delete;
  GroupGuard& operator=(const GroupGuard&) = delete;
  // ncclGroupStart; the result is checked by the caller.
  ncclResult_t start();
  // ncclGroupEnd; after it the guard does nothing.
  ncclResult_t end();

 private:
  bool open_ = false;
};

}  // namespace terse::nccl

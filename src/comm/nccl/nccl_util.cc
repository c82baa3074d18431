#include "nccl_util.h"

#include "terse/core/check.h"

namespace terse::nccl {

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return ncclFloat32;
    case DType::kBF16:
      return ncclBfloat16;
    case DType::kF16:
      return ncclFloat16;
    case DType::kF64:
      return ncclFloat64;
    case DType::kI32:
      return ncclInt32;
    case DType::kI64:
      return ncclInt64;
    case DType::kU8:
      return ncclUint8;
  }
  TERSE_THROW(InvalidArgument, "no NCCL datatype for dtype code ", static_cast<int>(dtype),
              "; use one of f32, bf16, f16, f64, i32, i64, u8");
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kMax:
      return ncclMax;
    case ReduceOp::kMin:
      return ncclMin;
  }
  TERSE_THROW(InvalidArgument, "unknown reduce op code ", static_cast<int>(op),
              "; use ReduceOp::kSum, kMax or kMin");
}

namespace {

const char* nccl_result_name(ncclResult_t result) {
  switch (result) {
    case ncclSuccess:
      return "ncclSuccess";
    case ncclUnhandledCudaError:
      return "ncclUnhandledCudaError";
    case ncclSystemError:
      return "ncclSystemError";
    case ncclInternalError:
      return "ncclInternalError";
    case ncclInvalidArgument:
      return "ncclInvalidArgument";
    case ncclInvalidUsage:
      return "ncclInvalidUsage";
    case ncclRemoteError:
      return "ncclRemoteError";
    case ncclInProgress:
      return "ncclInProgress";
    default:
      return "ncclResult";
  }
}

}  // namespace

std::string nccl_error_text(ncclResult_t result, ncclComm_t comm) {
  std::string text = std::string(ncclGetErrorString(result)) + " (" + nccl_result_name(result) +
                     " = " + std::to_string(static_cast<int>(result)) + ")";
  // NCCL's own last message (thread-local in NCCL), often the actual reason.
  const char* last = ncclGetLastError(comm);
  if (last != nullptr && *last != '\0') text += ": " + std::string(last);
  return text;
}

std::string cuda_error_text(cudaError_t error) {
  std::string text = std::string(cudaGetErrorName(error)) + " (" + cudaGetErrorString(error) + ")";
  cudaGetLastError();
  return text;
}

void cuda_check(cudaError_t error, const char* call, const std::string& context) {
  if (error == cudaSuccess) return;
  const std::string text = cuda_error_text(error);
  TERSE_THROW(CudaError, call, " failed ", context, ": ", text,
              "; check the GPU with nvidia-smi and run with CUDA_LAUNCH_BLOCKING=1 to find the "
              "kernel that failed");
}

DeviceGuard::DeviceGuard(int device) : device_(device) {
  cuda_check(cudaGetDevice(&previous_), "cudaGetDevice", "while selecting the NCCL device");
  if (previous_ != device_) {
    cuda_check(cudaSetDevice(device_), "cudaSetDevice",
               "for the NCCL communicator's cuda:" + std::to_string(device_));
  }
}

DeviceGuard::~DeviceGuard() {
  if (previous_ >= 0 && previous_ != device_) cudaSetDevice(previous_);
}

GroupGuard::~GroupGuard() {
  if (open_) ncclGroupEnd();
}

ncclResult_t GroupGuard::start() {
  const ncclResult_t r = ncclGroupStart();
  open_ = r == ncclSuccess;
  return r;
}

ncclResult_t GroupGuard::end() {
  open_ = false;
  return ncclGroupEnd();
}

}  // namespace terse::nccl

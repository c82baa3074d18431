#include "sparse_internal.h"

#include "terse/core/check.h"
#include "terse/kernels/cuda_multi_tensor.h"
#include "terse/kernels/cuda_power_sgd.h"

namespace terse::sparse_detail {

namespace {

// Empty when the pointer is memory of the view's GPU (or nothing is to be read), else why not.
std::string check_device_pointer(const void* p, int64_t count, Device device, const char* what) {
  if (count == 0 || cuda_power_sgd_is_device_memory(p, device.index)) return std::string();
  return detail::str_cat(what, " (", p, ") is labelled ", device.str(),
                         " but is not memory of that GPU (a host pointer, another GPU's memory, "
                         "or a build without CUDA); pass the views' true device");
}

}  // namespace

std::string check_arguments(const SparseVector& mine, const TensorView& out,
                            const Communicator& comm) {
  if (out.dtype != DType::kF32) {
    return detail::str_cat("out holds ", dtype_name(out.dtype), "; pass a dense f32 buffer");
  }
  if (mine.device != out.device) {
    return detail::str_cat("the pairs are on ", mine.device.str(), " but out is on ",
                           out.device.str(), "; pass the pairs and out on one device");
  }
  const Device comm_device = comm.device();
  if (comm_device.is_cuda() && out.device != comm_device) {
    return detail::str_cat("the communicator (", comm.backend(), ") moves memory of ",
                           comm_device.str(), " but out is on ", out.device.str(),
                           "; pass views on its GPU, or use a host communicator (mpi)");
  }
  if (out.numel < 0 || (out.numel > 0 && out.data == nullptr)) {
    return detail::str_cat("out has ", out.numel, " elements at ", out.data,
                           "; pass an allocated buffer of numel >= 0 elements");
  }
  if (out.numel > int64_t{1} << 31) {
    return detail::str_cat("out has ", out.numel,
                           " elements, more than int32 indices address (2^31); split the bucket");
  }
  if (mine.count < 0 || mine.count > out.numel) {
    return detail::str_cat("count is ", mine.count, " for a vector of ", out.numel,
                           " elements; pass 0 <= count <= numel");
  }
  if (mine.count > 0 && (mine.indices == nullptr || mine.values == nullptr)) {
    return detail::str_cat("count is ", mine.count, " but indices (", mine.indices, ") or values (",
                           static_cast<const void*>(mine.values),
                           ") is null; pass the pair buffers");
  }
  if (out.device.is_cuda()) {
    std::string why = check_device_pointer(out.data, out.numel, out.device, "out");
    if (why.empty()) why = check_device_pointer(mine.indices, mine.count, out.device, "indices");
    if (why.empty()) why = check_device_pointer(mine.values, mine.count, out.device, "values");
    return why;
  }
  return std::string();
}

int64_t first_bad_index(const int32_t* idx, int64_t count, int64_t lo, int64_t hi) {
  int64_t prev = lo - 1;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t v = idx[i];
    if (v < lo || v >= hi || v <= prev) return i;
    prev = v;
  }
  return -1;
}

std::string bad_index_reason(int64_t value, int64_t prev, int64_t lo, int64_t hi) {
  if (value < lo || value >= hi) {
    return detail::str_cat("index ", value, " is outside [", lo, ", ", hi, ")");
  }
  return detail::str_cat("index ", value, " does not follow ", prev,
                         " in increasing order (indices must be sorted, without repeats)");
}

int64_t index_at(const int32_t* idx, int64_t pos, Device device) {
  if (device.is_cpu()) return idx[pos];
  int32_t v = 0;
  cuda_copy(&v, idx + pos, sizeof(v));
  return v;
}

}  // namespace terse::sparse_detail

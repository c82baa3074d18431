#pragma once

// Internal helpers shared by the comm backends: argument validation (run before any transport
// is touched), human-readable sizes and rank lists for error messages.

#include <cstdint>
#include <string>
#include <vector>

#include "terse/comm/reduce_op.h"
#include "terse/core/tensor_view.h"

namespace terse::detail {

// "12 B", "4.0 KB", "1.2 MB", "3.4 GB" (powers of 1000, as bandwidth figures are).
std::string format_bytes(uint64_t bytes);
// {0, 1, 2, 5} -> "0-2, 5"; empty -> "none".
std::string format_ranks(const std::vector<int>& ranks);
// "1.5 s", "200 ms".
std::string format_seconds(double seconds);

// Each throws InvalidArgument naming the verb, the rank, the values seen and the fix. `device`
// is where the backend's buffers must live (the CPU for MPI and local, the GPU for NCCL).
void check_all_reduce(const TensorView& inout, ReduceOp op, int rank,
                      Device device = Device::cpu());
void check_all_gather(const TensorView& in, const TensorView& out, int rank, int size,
                      Device device = Device::cpu());
void check_all_gatherv(const TensorView& in, const TensorView& out,
                       const std::vector<int64_t>& counts, int rank, int size,
                       Device device = Device::cpu());
void check_all_to_all(const TensorView& in, const TensorView& out, int rank, int size,
                      Device device = Device::cpu());
void check_all_to_allv(const TensorView& in, const std::vector<int64_t>& send_counts,
                       const TensorView& out, const std::vector<int64_t>& recv_counts, int rank,
                       int size, Device device = Device::cpu());
void check_broadcast(const TensorView& inout, int root, int rank, int size,
                     Device device = Device::cpu());
// MPI counts and displacements are C ints: every count and every prefix sum must fit.
void check_fits_int(const std::vector<int64_t>& counts, const char* verb, const char* what,
                    int rank);
void check_fits_int(int64_t count, const char* verb, const char* what, int rank);

}  // namespace terse::detail

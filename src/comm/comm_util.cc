#include "comm_util.h"

#include <climits>
#include <cstdio>
#include <sstream>

#include "terse/core/check.h"

namespace terse::detail {

std::string format_bytes(uint64_t bytes) {
  if (bytes < 1000) return std::to_string(bytes) + " B";
  static const char* const kUnits[] = {"KB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes) / 1000.0;
  int u = 0;
  while (v >= 1000.0 && u < 3) {
    v /= 1000.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  return buf;
}

std::string format_ranks(const std::vector<int>& ranks) {
  if (ranks.empty()) return "none";
  std::ostringstream os;
  size_t i = 0;
  while (i < ranks.size()) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (i != 0) os << ", ";
    os << ranks[i];
    if (j > i) os << "-" << ranks[j];
    i = j + 1;
  }
  return os.str();
}

std::string format_seconds(double seconds) {
  char buf[32];
  if (seconds < 1.0) {
    std::snprintf(buf, sizeof buf, "%.0f ms", seconds * 1000.0);
  } else {
    std::snprintf(buf, sizeof buf, "%g s", seconds);
  }
  return buf;
}

namespace {

void check_view(const TensorView& v, const char* verb, const char* name, int rank, Device device) {
  TERSE_CHECK(v.numel >= 0, InvalidArgument, verb, " on rank ", rank, ": ", name,
              " has a negative element count ", v.numel, "; pass a valid tensor view");
  TERSE_CHECK(!device.is_cpu() || v.device.is_cpu(), InvalidArgument, verb, " on rank ", rank, ": ",
              name, " is on ", v.device.str(),
              " but this communicator moves host memory only; copy it to the CPU or use the "
              "\"nccl\" backend");
  TERSE_CHECK(device.is_cpu() || v.device.is_cuda(), InvalidArgument, verb, " on rank ", rank, ": ",
              name, " is on ", v.device.str(), " but the NCCL communicator moves memory of ",
              device.str(), " only; copy it to ", device.str(), " or use the \"mpi\" backend");
  TERSE_CHECK(v.device == device, InvalidArgument, verb, " on rank ", rank, ": ", name, " is on ",
              v.device.str(), " but this rank's NCCL communicator is on ", device.str(),
              " (one rank per GPU); copy it to ", device.str(), " or build the communicator on ",
              v.device.str(), " (NcclOptions::device)");
  TERSE_CHECK(v.numel == 0 || v.data != nullptr, InvalidArgument, verb, " on rank ", rank, ": ",
              name, " has ", v.numel,
              " elements but a null data pointer; pass an allocated buffer");
}

void check_same_dtype(const TensorView& in, const TensorView& out, const char* verb, int rank) {
  TERSE_CHECK(in.dtype == out.dtype, InvalidArgument, verb, " on rank ", rank, ": in is ",
              dtype_name(in.dtype), " but out is ", dtype_name(out.dtype),
              "; both buffers must have the same dtype");
}

// Sum of counts; throws on a wrong length, a negative entry or int64 overflow.
int64_t checked_sum(const std::vector<int64_t>& counts, const char* verb, const char* what,
                    int rank, int size) {
  TERSE_CHECK(counts.size() == static_cast<size_t>(size), InvalidArgument, verb, " on rank ", rank,
              ": ", what, " has ", counts.size(), " entries but the communicator has ", size,
              " ranks; pass one count per rank");
  int64_t sum = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    TERSE_CHECK(counts[i] >= 0, InvalidArgument, verb, " on rank ", rank, ": ", what, "[", i,
                "] is ", counts[i], "; counts must be >= 0");
    TERSE_CHECK(!__builtin_add_overflow(sum, counts[i], &sum), InvalidArgument, verb, " on rank ",
                rank, ": ", what, " sums past 2^63 at entry ", i, "; counts are element counts");
  }
  return sum;
}

}  // namespace

void check_all_reduce(const TensorView& inout, ReduceOp op, int rank, Device device) {
  check_view(inout, "all_reduce", "inout", rank, device);
  TERSE_CHECK(op == ReduceOp::kSum || op == ReduceOp::kMax || op == ReduceOp::kMin, InvalidArgument,
              "all_reduce on rank ", rank, ": unknown reduce op code ", static_cast<int>(op),
              "; use ReduceOp::kSum, kMax or kMin");
}

void check_all_gather(const TensorView& in, const TensorView& out, int rank, int size,
                      Device device) {
  check_view(in, "all_gather", "in", rank, device);
  check_view(out, "all_gather", "out", rank, device);
  check_same_dtype(in, out, "all_gather", rank);
  TERSE_CHECK(in.numel <= INT64_MAX / size && out.numel == in.numel * size, InvalidArgument,
              "all_gather on rank ", rank, ": out has ", out.numel, " elements but must hold ",
              size, " ranks x ", in.numel, " = ", in.numel * size,
              "; size out as size() * in.numel");
}

void check_all_gatherv(const TensorView& in, const TensorView& out,
                       const std::vector<int64_t>& counts, int rank, int size, Device device) {
  check_view(in, "all_gatherv", "in", rank, device);
  check_view(out, "all_gatherv", "out", rank, device);
  check_same_dtype(in, out, "all_gatherv", rank);
  const int64_t total = checked_sum(counts, "all_gatherv", "counts", rank, size);
  TERSE_CHECK(in.numel == counts[static_cast<size_t>(rank)], InvalidArgument,
              "all_gatherv on rank ", rank, ": in has ", in.numel, " elements but counts[", rank,
              "] is ", counts[static_cast<size_t>(rank)], "; every rank must pass the same counts");
  TERSE_CHECK(out.numel == total, InvalidArgument, "all_gatherv on rank ", rank, ": out has ",
              out.numel, " elements but the counts sum to ", total, "; size out as sum(counts)");
}

void check_all_to_all(const TensorView& in, const TensorView& out, int rank, int size,
                      Device device) {
  check_view(in, "all_to_all", "in", rank, device);
  check_view(out, "all_to_all", "out", rank, device);
  check_same_dtype(in, out, "all_to_all", rank);
  TERSE_CHECK(in.numel == out.numel, InvalidArgument, "all_to_all on rank ", rank, ": in has ",
              in.numel, " elements but out has ", out.numel, "; both must hold ", size,
              " equal chunks");
  TERSE_CHECK(in.numel % size == 0, InvalidArgument, "all_to_all on rank ", rank, ": ", in.numel,
              " elements do not split into ", size,
              " equal chunks; pad to a multiple of size() or use all_to_allv");
}

void check_all_to_allv(const TensorView& in, const std::vector<int64_t>& send_counts,
                       const TensorView& out, const std::vector<int64_t>& recv_counts, int rank,
                       int size, Device device) {
  check_view(in, "all_to_allv", "in", rank, device);
  check_view(out, "all_to_allv", "out", rank, device);
  check_same_dtype(in, out, "all_to_allv", rank);
  const int64_t sent = checked_sum(send_counts, "all_to_allv", "send_counts", rank, size);
  const int64_t received = checked_sum(recv_counts, "all_to_allv", "recv_counts", rank, size);
  TERSE_CHECK(in.numel == sent, InvalidArgument, "all_to_allv on rank ", rank, ": in has ",
              in.numel, " elements but send_counts sum to ", sent,
              "; in must hold exactly the elements sent");
  TERSE_CHECK(out.numel == received, InvalidArgument, "all_to_allv on rank ", rank, ": out has ",
              out.numel, " elements but recv_counts sum to ", received,
              "; size out as sum(recv_counts)");
}

void check_broadcast(const TensorView& inout, int root, int rank, int size, Device device) {
  check_view(inout, "broadcast", "inout", rank, device);
  TERSE_CHECK(root >= 0 && root < size, InvalidArgument, "broadcast on rank ", rank, ": root ",
              root, " is outside [0, ", size, "); pass the rank that holds the data");
}

void check_fits_int(int64_t count, const char* verb, const char* what, int rank) {
  TERSE_CHECK(count <= INT_MAX, InvalidArgument, verb, " on rank ", rank, ": ", what, " is ", count,
              " elements, more than MPI's int limit ", INT_MAX,
              "; split the buffer into smaller collectives");
}

void check_fits_int(const std::vector<int64_t>& counts, const char* verb, const char* what,
                    int rank) {
  int64_t prefix = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    TERSE_CHECK(counts[i] <= INT_MAX, InvalidArgument, verb, " on rank ", rank, ": ", what, "[", i,
                "] is ", counts[i], " elements, more than MPI's int limit ", INT_MAX,
                "; split the buffer into smaller collectives");
    // The displacement of entry i is the prefix sum before it.
    TERSE_CHECK(prefix <= INT_MAX, InvalidArgument, verb, " on rank ", rank, ": the offset of ",
                what, "[", i, "] is ", prefix, " elements, more than MPI's int limit ", INT_MAX,
                "; split the buffer into smaller collectives");
    prefix += counts[i];
  }
}

}  // namespace terse::detail

#include "nccl_bootstrap.h"

#include <cuda_runtime.h>
#include <mpi.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "../comm_util.h"
#include "../mpi/mpi_backend.h"
#include "nccl_util.h"
#include "terse/comm/communicator.h"
#include "terse/core/check.h"

namespace terse::nccl {

namespace {

enum Problem : int32_t {
  kOk = 0,
  kNoDevice = 1,
  kDeviceRange = 2,
  kNoLocalRank = 3,
  kSetDevice = 4,
  kUniqueId = 5,
};

// What each rank tells the others before NCCL is touched. Plain bytes on the wire (MPI_BYTE);
// every rank runs the same binary.
struct RankRecord {
  int32_t problem = kOk;
  int32_t device = -1;
  int32_t visible = 0;  // cudaGetDeviceCount
  int32_t reserved = 0;
  char host[64] = {};
  char bus_id[32] = {};  // cudaDeviceGetPCIBusId: one physical GPU, whatever CUDA_VISIBLE_DEVICES
};

std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(buf, static_cast<size_t>(len));
}

std::string all_ranks(int size) {
  return (size == 1 ? std::string("rank 0") : "ranks 0-" + std::to_string(size - 1)) + " of " +
         std::to_string(size);
}

void mpi_check(int rc, const char* call, int rank) {
  TERSE_CHECK(rc == MPI_SUCCESS, CommError, call, " failed on rank ", rank,
              " while setting up the NCCL communicator: ", mpi_error_string(rc),
              "; check the other ranks' output (one may have died) and the MPI installation");
}

// Polls an MPI request for at most `timeout`; Timeout names the step and the ranks waited for.
void mpi_wait(MPI_Request* request, const char* step, int rank, int size,
              std::chrono::milliseconds timeout) {
  const auto start = std::chrono::steady_clock::now();
  int done = 0;
  while (true) {
    mpi_check(MPI_Test(request, &done, MPI_STATUS_IGNORE), "MPI_Test", rank);
    if (done) return;
    const auto now = std::chrono::steady_clock::now();
    TERSE_CHECK(now - start < timeout, Timeout, step, " on rank ", rank,
                " did not complete within ",
                detail::format_seconds(static_cast<double>(timeout.count()) / 1000.0),
                " while setting up the NCCL communicator; it waits for ", all_ranks(size),
                "; every rank must create the \"nccl\" communicator at the same point: check the "
                "other ranks' output, or raise --timeout / TERSE_TIMEOUT_S");
    std::this_thread::yield();
  }
}

// A duplicate of MPI_COMM_WORLD with errors returned (the world's handler is left alone).
class WorldDup {
 public:
  WorldDup(int rank, int size, std::chrono::milliseconds timeout) {
    MPI_Request request = MPI_REQUEST_NULL;
    mpi_check(MPI_Comm_idup(MPI_COMM_WORLD, &comm_, &request), "MPI_Comm_idup", rank);
    mpi_wait(&request, "MPI_Comm_idup(MPI_COMM_WORLD)", rank, size, timeout);
    mpi_check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", rank);
  }
  ~WorldDup() {
    // Not after a timeout: a request still pending on it would make freeing it invalid; the
    // job is expected to end then.
    if (comm_ != MPI_COMM_NULL && !std::uncaught_exceptions()) MPI_Comm_free(&comm_);
  }
  WorldDup(const WorldDup&) = delete;
  WorldDup& operator=(const WorldDup&) = delete;
  MPI_Comm get() const { return comm_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

std::string visible_devices_env() {
  const char* v = std::getenv("CUDA_VISIBLE_DEVICES");
  return v == nullptr ? std::string("unset") : "'" + std::string(v) + "'";
}

// This rank's record, and the reason for its problem (the others only see the code).
RankRecord examine_self(int requested, int rank, int size, ncclUniqueId* id, std::string* reason) {
  RankRecord me;
  if (gethostname(me.host, sizeof me.host - 1) != 0) std::strcpy(me.host, "unknown-host");
  int visible = 0;
  const cudaError_t count_error = cudaGetDeviceCount(&visible);
  me.visible = count_error == cudaSuccess ? visible : 0;
  const int node_rank = size == 1 ? 0 : local_rank();
  if (me.visible == 0) {
    me.problem = kNoDevice;
    *reason = "sees no CUDA device (" +
              (count_error == cudaSuccess ? std::string("cudaGetDeviceCount returned 0")
                                          : "cudaGetDeviceCount: " + cuda_error_text(count_error)) +
              ", CUDA_VISIBLE_DEVICES " + visible_devices_env() + ")";
  } else if (requested >= me.visible || requested < -1) {
    me.problem = kDeviceRange;
    me.device = requested;
    *reason = "was asked for cuda:" + std::to_string(requested) + " but sees " +
              std::to_string(me.visible) + " CUDA devices (CUDA_VISIBLE_DEVICES " +
              visible_devices_env() +
              "); NcclOptions::device is a device index, or -1 for the "
              "local rank's GPU";
  } else if (requested < 0 && node_rank < 0) {
    me.problem = kNoLocalRank;
    *reason =
        "cannot tell its local rank (OMPI_COMM_WORLD_LOCAL_RANK and MPI_LOCALRANKID are unset)";
  } else {
    me.device = requested >= 0 ? requested : node_rank % me.visible;
    const cudaError_t set_error = cudaSetDevice(me.device);
    const cudaError_t bus_error =
        set_error == cudaSuccess ? cudaDeviceGetPCIBusId(me.bus_id, sizeof me.bus_id - 1, me.device)
                                 : set_error;
    if (bus_error != cudaSuccess) {
      me.problem = kSetDevice;
      *reason = "could not use cuda:" + std::to_string(me.device) + " (" +
                (set_error != cudaSuccess ? "cudaSetDevice" : "cudaDeviceGetPCIBusId") + ": " +
                cuda_error_text(bus_error) + ")";
    }
  }
  if (rank == 0 && me.problem == kOk) {
    const ncclResult_t r = ncclGetUniqueId(id);
    if (r != ncclSuccess) {
      me.problem = kUniqueId;
      *reason =
          "could not make the NCCL unique id (ncclGetUniqueId: " + nccl_error_text(r, nullptr) +
          ")";
    }
  }
  return me;
}

// What another rank's record says of its problem (its own message has the details).
std::string summary(const RankRecord& r) {
  const std::string devices = std::to_string(r.visible) + " CUDA devices";
  switch (r.problem) {
    case kNoDevice:
      return "sees no CUDA device";
    case kDeviceRange:
      return "was asked for cuda:" + std::to_string(r.device) + " but sees " + devices;
    case kNoLocalRank:
      return "cannot tell its local rank (OMPI_COMM_WORLD_LOCAL_RANK and MPI_LOCALRANKID are "
             "unset)";
    case kSetDevice:
      return "could not use cuda:" + std::to_string(r.device);
    case kUniqueId:
      return "could not make the NCCL unique id";
    default:
      return "reported problem " + std::to_string(r.problem);
  }
}

[[noreturn]] void throw_problem(const RankRecord& r, int rank, const std::string& reason,
                                bool mine) {
  const std::string who = "rank " + std::to_string(rank) + " (host " + r.host + ")";
  const std::string what = mine ? reason : summary(r) + " (see that rank's output)";
  const char* fix =
      "; NCCL needs one GPU per rank: start at most as many ranks per node as it has GPUs, pass "
      "NcclOptions::device, or use the \"mpi\" backend on CPU memory";
  switch (r.problem) {
    case kSetDevice:
      TERSE_THROW(CudaError, "NCCL set-up: ", who, " ", what,
                  "; check the GPU with nvidia-smi (another process may hold it in exclusive "
                  "mode)");
    case kUniqueId:
      TERSE_THROW(CommError, "NCCL set-up: ", who, " ", what,
                  "; set NCCL_DEBUG=WARN for NCCL's reason (often no usable network interface: "
                  "try NCCL_SOCKET_IFNAME=lo on one host)");
    default:
      TERSE_THROW(InvalidArgument, "NCCL set-up: ", who, " ", what, fix);
  }
}

// Two ranks on one physical GPU (same host, same PCI bus id): InvalidArgument on every rank.
void check_one_rank_per_gpu(const std::vector<RankRecord>& all) {
  for (size_t a = 0; a < all.size(); ++a) {
    for (size_t b = a + 1; b < all.size(); ++b) {
      if (std::strncmp(all[a].host, all[b].host, sizeof all[a].host) != 0 ||
          std::strncmp(all[a].bus_id, all[b].bus_id, sizeof all[a].bus_id) != 0) {
        continue;
      }
      int on_host = 0;
      for (const RankRecord& r : all) {
        on_host += std::strncmp(r.host, all[a].host, sizeof r.host) == 0 ? 1 : 0;
      }
      TERSE_THROW(InvalidArgument, "one rank per GPU: ranks ", a, " and ", b, " on host ",
                  all[a].host, " both chose the GPU at PCI ", all[a].bus_id,
                  " (cuda:", all[a].device, " and cuda:", all[b].device, "): ", on_host,
                  " ranks on that host but rank ", a, " sees ", all[a].visible,
                  " GPUs; start at most that many ranks per node (mpirun -n ", all[a].visible,
                  ", or --map-by ppr:", all[a].visible,
                  ":node), or give each rank its own GPU (NcclOptions::device, or "
                  "CUDA_VISIBLE_DEVICES per rank); NCCL itself would fail with \"duplicate GPU\"");
    }
  }
}

}  // namespace

NcclBootstrap bootstrap_nccl(int requested, std::chrono::milliseconds timeout) {
  detail::ensure_mpi_initialized();
  NcclBootstrap out;
  mpi_check(MPI_Comm_rank(MPI_COMM_WORLD, &out.rank), "MPI_Comm_rank", -1);
  mpi_check(MPI_Comm_size(MPI_COMM_WORLD, &out.size), "MPI_Comm_size", out.rank);
  WorldDup world(out.rank, out.size, timeout);

  std::string reason;
  const RankRecord me = examine_self(requested, out.rank, out.size, &out.id, &reason);
  std::vector<RankRecord> all(static_cast<size_t>(out.size));
  MPI_Request request = MPI_REQUEST_NULL;
  mpi_check(MPI_Iallgather(&me, sizeof me, MPI_BYTE, all.data(), sizeof me, MPI_BYTE, world.get(),
                           &request),
            "MPI_Iallgather", out.rank);
  mpi_wait(&request, "the exchange of GPU choices (MPI_Iallgather)", out.rank, out.size, timeout);
  // Every rank reads the same records, so every rank throws: with its own reason if it has
  // one, else naming the first rank that has.
  if (me.problem != kOk) throw_problem(me, out.rank, reason, /*mine=*/true);
  for (size_t r = 0; r < all.size(); ++r) {
    if (all[r].problem != kOk) throw_problem(all[r], static_cast<int>(r), reason, false);
  }
  check_one_rank_per_gpu(all);

  mpi_check(MPI_Ibcast(&out.id, sizeof out.id, MPI_BYTE, 0, world.get(), &request), "MPI_Ibcast",
            out.rank);
  mpi_wait(&request, "the broadcast of the NCCL unique id (MPI_Ibcast)", out.rank, out.size,
           timeout);
  out.device = me.device;
  return out;
}

}  // namespace terse::nccl

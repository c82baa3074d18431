#include "terse/comm/communicator.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "mpi/mpi_backend.h"
#include "terse/comm/local_communicator.h"
#include "terse/comm/nccl_communicator.h"
#include "terse/core/check.h"

namespace terse {

namespace {

constexpr double kDefaultTimeoutS = 60.0;

std::chrono::milliseconds timeout_from_env() {
  const char* env = std::getenv("TERSE_TIMEOUT_S");
  if (env == nullptr || *env == '\0') {
    return std::chrono::milliseconds(static_cast<int64_t>(kDefaultTimeoutS * 1000));
  }
  char* end = nullptr;
  errno = 0;
  const double s = std::strtod(env, &end);
  TERSE_CHECK(end != env && *end == '\0' && errno == 0 && std::isfinite(s) && s > 0 && s < 1e9,
              InvalidArgument, "TERSE_TIMEOUT_S must be a positive number of seconds, got '", env,
              "'; set e.g. TERSE_TIMEOUT_S=60 or unset it for the default of ", kDefaultTimeoutS,
              " s");
  // Round up so a tiny positive value never becomes a zero deadline.
  return std::chrono::milliseconds(static_cast<int64_t>(std::ceil(s * 1000.0)));
}

}  // namespace

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kMin:
      return "min";
  }
  return "unknown";
}

Communicator::Communicator() : timeout_(timeout_from_env()) {}

void Communicator::set_timeout(std::chrono::milliseconds timeout) {
  TERSE_CHECK(timeout.count() > 0, InvalidArgument, "communicator timeout must be > 0 ms, got ",
              timeout.count(), " ms; pass a positive duration (e.g. std::chrono::seconds(60))");
  timeout_ = timeout;
}

void Communicator::all_reduce(TensorView inout, ReduceOp op) {
  all_reduce_async(inout, op)->wait(timeout_);
}

void Communicator::all_gather(TensorView in, TensorView out) {
  all_gather_async(in, out)->wait(timeout_);
}

void Communicator::all_gatherv(TensorView in, TensorView out, const std::vector<int64_t>& counts) {
  all_gatherv_async(in, out, counts)->wait(timeout_);
}

void Communicator::all_to_all(TensorView in, TensorView out) {
  all_to_all_async(in, out)->wait(timeout_);
}

void Communicator::all_to_allv(TensorView in, const std::vector<int64_t>& send_counts,
                               TensorView out, const std::vector<int64_t>& recv_counts) {
  all_to_allv_async(in, send_counts, out, recv_counts)->wait(timeout_);
}

void Communicator::broadcast(TensorView inout, int root) {
  broadcast_async(inout, root)->wait(timeout_);
}

void Communicator::barrier() { barrier_async()->wait(timeout_); }

std::unique_ptr<Communicator> make_communicator(const std::string& backend) {
  if (backend == "local") {
    return std::move(make_local_communicators(1).front());
  }
  if (backend == "mpi") {
    return detail::make_mpi_communicator();
  }
  if (backend == "nccl") {
    return make_nccl_communicator();
  }
  TERSE_THROW(InvalidArgument, "unknown communicator backend '", backend,
              "'; use \"mpi\" (processes started by mpirun), \"nccl\" (one rank per GPU, "
              "started by mpirun) or \"local\" (a single rank)");
}

bool launched_under_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"}) {
    const char* v = std::getenv(var);
    if (v != nullptr && *v != '\0') return true;
  }
  return false;
}

int local_rank() {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"}) {
    const char* v = std::getenv(var);
    if (v == nullptr || *v == '\0') continue;
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (end != v && *end == '\0' && n >= 0 && n < (1 << 20)) return static_cast<int>(n);
  }
  return -1;
}

int local_rank_count() {
  const char* v = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (v == nullptr || *v == '\0') return 1;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  // A malformed value comes from the launcher, not the user; one rank per node is the safe
  // reading for thread sizing.
  if (end == v || *end != '\0' || n < 1 || n > 1 << 20) return 1;
  return static_cast<int>(n);
}

}  // namespace terse

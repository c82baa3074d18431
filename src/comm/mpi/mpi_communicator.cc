// Open MPI backend: non-blocking collectives on a duplicate of MPI_COMM_WORLD, polled with a
// deadline so a dead or hung peer gives Timeout instead of a silent hang.

#include <mpi.h>

#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>

#include "../comm_util.h"
#include "../reduce_kernels.h"
#include "mpi_backend.h"
#include "terse/core/check.h"

namespace terse {

namespace {

std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(buf, static_cast<size_t>(len));
}

// Throws CommError for a failed MPI call (the communicator returns errors, see MPI_ERRORS_RETURN).
void mpi_check(int rc, const char* call, int rank, int size) {
  TERSE_CHECK(rc == MPI_SUCCESS, CommError, call, " failed on rank ", rank, " of ", size, ": ",
              mpi_error_string(rc),
              "; check the other ranks' output (one may have died) and the MPI installation");
}

// ---- MPI lifetime ---------------------------------------------------------------------------

bool g_we_initialized = false;

void finalize_if_ours() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

// ---- datatypes and reduction ops ------------------------------------------------------------

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return MPI_FLOAT;
    case DType::kF64:
      return MPI_DOUBLE;
    case DType::kI32:
      return MPI_INT32_T;
    case DType::kI64:
      return MPI_INT64_T;
    case DType::kU8:
      return MPI_UINT8_T;
    case DType::kBF16:
    case DType::kF16:
      // Moved as opaque 16-bit words; reductions use the user-defined ops below.
      return MPI_UINT16_T;
  }
  TERSE_THROW(InvalidArgument, "no MPI datatype for dtype code ", static_cast<int>(dtype),
              "; use one of f32, bf16, f16, f64, i32, i64, u8");
}

template <DType D, ReduceOp R>
void user_reduce(void* in, void* inout, int* len, MPI_Datatype* /*type*/) {
  detail::combine_pair(in, inout, *len, D, R);
}

// Reductions terse does itself, in f32 math for bf16/f16. u8 is here too: Open MPI 4.1's AVX
// op component saturates 8-bit MPI_SUM instead of wrapping (open-mpi/ompi#8045, "wontfix"),
// which would make the MPI backend disagree with the local one.
constexpr DType kUserOpDTypes[] = {DType::kBF16, DType::kF16, DType::kU8};

struct UserOps {
  MPI_Op op[3][3];  // [bf16, f16, u8][sum, max, min]
};

// Created once after MPI_Init; MPI frees them at MPI_Finalize.
const UserOps& user_ops() {
  static const UserOps ops = [] {
    UserOps u{};
    MPI_User_function* fns[3][3] = {
        {&user_reduce<DType::kBF16, ReduceOp::kSum>, &user_reduce<DType::kBF16, ReduceOp::kMax>,
         &user_reduce<DType::kBF16, ReduceOp::kMin>},
        {&user_reduce<DType::kF16, ReduceOp::kSum>, &user_reduce<DType::kF16, ReduceOp::kMax>,
         &user_reduce<DType::kF16, ReduceOp::kMin>},
        {&user_reduce<DType::kU8, ReduceOp::kSum>, &user_reduce<DType::kU8, ReduceOp::kMax>,
         &user_reduce<DType::kU8, ReduceOp::kMin>}};
    for (int t = 0; t < 3; ++t) {
      for (int o = 0; o < 3; ++o) {
        const int rc = MPI_Op_create(fns[t][o], /*commute=*/1, &u.op[t][o]);
        TERSE_CHECK(rc == MPI_SUCCESS, CommError, "MPI_Op_create failed: ", mpi_error_string(rc),
                    "; check the Open MPI installation");
      }
    }
    return u;
  }();
  return ops;
}

MPI_Op mpi_op(ReduceOp op, DType dtype) {
  for (int t = 0; t < 3; ++t) {
    if (dtype == kUserOpDTypes[t]) return user_ops().op[t][static_cast<int>(op)];
  }
  switch (op) {
    case ReduceOp::kSum:
      return MPI_SUM;
    case ReduceOp::kMax:
      return MPI_MAX;
    case ReduceOp::kMin:
      return MPI_MIN;
  }
  TERSE_THROW(InvalidArgument, "unknown reduce op code ", static_cast<int>(op),
              "; use ReduceOp::kSum, kMax or kMin");
}

int to_int(int64_t v) { return static_cast<int>(v); }

// libnbc's threshold for leaving the binomial all-reduce (see all_reduce_async).
constexpr size_t kAllReduceCopyBytes = 65536;

// int counts and displacements for the v-collectives; validated to fit beforehand.
void counts_and_displs(const std::vector<int64_t>& counts, std::vector<int>* c,
                       std::vector<int>* d) {
  c->resize(counts.size());
  d->resize(counts.size());
  int64_t offset = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    (*c)[i] = to_int(counts[i]);
    (*d)[i] = to_int(offset);
    offset += counts[i];
  }
}

// ---- Work -----------------------------------------------------------------------------------

class MpiWork : public Work {
 public:
  MpiWork(int rank, int size, std::chrono::milliseconds default_timeout, std::string what)
      : rank_(rank), size_(size), default_timeout_(default_timeout), what_(std::move(what)) {}

  // A Work dropped before completion (after a Timeout, while unwinding) leaves its request to
  // MPI: freeing or cancelling an active collective request is not allowed, and blocking here
  // would hang the abort path. The job is expected to end through abort_job().
  ~MpiWork() override = default;

  MPI_Request* request() { return &request_; }
  // Buffers that must outlive the request (int counts and displacements, a send copy).
  std::vector<int> ints[4];
  std::vector<uint8_t> send_copy;

  bool test() override {
    if (done_) return true;
    int flag = 0;
    mpi_check(MPI_Test(&request_, &flag, MPI_STATUS_IGNORE), "MPI_Test", rank_, size_);
    done_ = flag != 0;
    return done_;
  }

  void wait(std::chrono::milliseconds timeout) override {
    TERSE_CHECK(timeout.count() > 0, InvalidArgument, "wait timeout must be > 0 ms, got ",
                timeout.count(), " ms; pass a positive duration");
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + timeout;
    // Open MPI progresses a non-blocking collective only inside MPI calls, so every pause
    // between MPI_Test calls stalls each of its rounds: with sleeps of up to 1 ms a 256 MB
    // all-reduce over 4 ranks of an idle host took 12.8 s, 1.2 s without (docs/comm.md).
    // Poll without sleeping for the
    // first 200 ms (yielding, so an oversubscribed node runs its other ranks, as Open MPI's
    // own yield_when_idle does), then sleep at most 20 us between polls for long waits.
    constexpr auto kPollOnly = std::chrono::milliseconds(200);
    constexpr auto kPause = std::chrono::microseconds(20);
    int polls = 0;
    while (!test()) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) {
        TERSE_THROW(
            Timeout, what_, " on rank ", rank_, " did not complete within ",
            detail::format_seconds(static_cast<double>(timeout.count()) / 1000.0),
            "; it waits for ranks ", size_ == 1 ? "0" : "0-" + std::to_string(size_ - 1), " of ",
            size_,
            "; a rank may have died or hung: check that rank's output, or raise --timeout / "
            "TERSE_TIMEOUT_S");
      }
      if (++polls <= 100) continue;
      if (now - start < kPollOnly) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(kPause);
      }
    }
  }

  void wait() override { wait(default_timeout_); }

 private:
  int rank_;
  int size_;
  std::chrono::milliseconds default_timeout_;
  std::string what_;
  MPI_Request request_ = MPI_REQUEST_NULL;
  bool done_ = false;
};

// ---- Communicator ---------------------------------------------------------------------------

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator() {
    detail::ensure_mpi_initialized();
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    TERSE_CHECK(rc == MPI_SUCCESS, CommError,
                "MPI_Comm_dup(MPI_COMM_WORLD) failed: ", mpi_error_string(rc),
                "; check that every rank creates its communicator");
    mpi_check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", -1, -1);
    mpi_check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank", -1, -1);
    mpi_check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size", rank_, -1);
  }

  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return "mpi"; }

  std::unique_ptr<Work> all_reduce_async(TensorView inout, ReduceOp op) override {
    detail::check_all_reduce(inout, op, rank_);
    detail::check_fits_int(inout.numel, "all_reduce", "inout", rank_);
    auto w = make_work("all_reduce", inout);
    // Open MPI's non-blocking all-reduce (coll/libnbc 4.1) takes a binomial reduce + broadcast
    // for every in-place call: each full vector crosses 2 log2(N) hops in turn, 3.1x slower
    // than the line rate for 16 MB over 4 ranks on a shaped 1 Gbit/s link (684 vs 218 ms).
    // From a separate send buffer it takes Rabenseifner's reduce-scatter + all-gather (N >= 4,
    // >= 64 KiB), 2 (N-1)/N of the vector per rank. Forcing that algorithm instead
    // (coll_libnbc_iallreduce_algorithm=3) is not safe: it falls back to a ring for vectors
    // shorter than N, which gives wrong sums in place (open-mpi/ompi#9385). The copy costs one
    // pass over the bucket; small vectors stay in place (latency-bound either way).
    const size_t nbytes = static_cast<size_t>(inout.numel) * dtype_size(inout.dtype);
    const void* send = MPI_IN_PLACE;
    if (size_ >= 4 && nbytes >= kAllReduceCopyBytes) {
      w->send_copy.assign(static_cast<const uint8_t*>(inout.data),
                          static_cast<const uint8_t*>(inout.data) + nbytes);
      send = w->send_copy.data();
    }
    mpi_check(MPI_Iallreduce(send, inout.data, to_int(inout.numel), mpi_type(inout.dtype),
                             mpi_op(op, inout.dtype), comm_, w->request()),
              "MPI_Iallreduce", rank_, size_);
    return w;
  }

  std::unique_ptr<Work> all_gather_async(TensorView in, TensorView out) override {
    detail::check_all_gather(in, out, rank_, size_);
    detail::check_fits_int(in.numel, "all_gather", "in", rank_);
    detail::check_fits_int(out.numel, "all_gather", "out", rank_);
    auto w = make_work("all_gather", out);
    const MPI_Datatype t = mpi_type(in.dtype);
    // In place when `in` is already this rank's chunk of `out`.
    const bool in_place = in.numel > 0 && in.data == static_cast<uint8_t*>(out.data) +
                                                         static_cast<size_t>(rank_) * in.nbytes();
    mpi_check(MPI_Iallgather(in_place ? MPI_IN_PLACE : in.data, to_int(in.numel), t, out.data,
                             to_int(in.numel), t, comm_, w->request()),
              "MPI_Iallgather", rank_, size_);
    return w;
  }

  std::unique_ptr<Work> all_gatherv_async(TensorView in, TensorView out,
                                          const std::vector<int64_t>& counts) override {
    detail::check_all_gatherv(in, out, counts, rank_, size_);
    detail::check_fits_int(counts, "all_gatherv", "counts", rank_);
    auto w = make_work("all_gatherv", out);
    counts_and_displs(counts, &w->ints[0], &w->ints[1]);
    const MPI_Datatype t = mpi_type(in.dtype);
    mpi_check(MPI_Iallgatherv(in.data, to_int(in.numel), t, out.data, w->ints[0].data(),
                              w->ints[1].data(), t, comm_, w->request()),
              "MPI_Iallgatherv", rank_, size_);
    return w;
  }

  std::unique_ptr<Work> all_to_all_async(TensorView in, TensorView out) override {
    detail::check_all_to_all(in, out, rank_, size_);
    detail::check_fits_int(in.numel, "all_to_all", "in", rank_);
    auto w = make_work("all_to_all", in);
    const MPI_Datatype t = mpi_type(in.dtype);
    const int chunk = to_int(in.numel / size_);
    mpi_check(MPI_Ialltoall(in.data == out.data ? MPI_IN_PLACE : in.data, chunk, t, out.data, chunk,
                            t, comm_, w->request()),
              "MPI_Ialltoall", rank_, size_);
    return w;
  }

  std::unique_ptr<Work> all_to_allv_async(TensorView in, const std::vector<int64_t>& send_counts,
                                          TensorView out,
                                          const std::vector<int64_t>& recv_counts) override {
    detail::check_all_to_allv(in, send_counts, out, recv_counts, rank_, size_);
    detail::check_fits_int(send_counts, "all_to_allv", "send_counts", rank_);
    detail::check_fits_int(recv_counts, "all_to_allv", "recv_counts", rank_);
    TERSE_CHECK(in.numel == 0 || in.data != out.data, InvalidArgument, "all_to_allv on rank ",
                rank_, ": in and out are the same buffer; pass separate buffers");
    auto w = make_work("all_to_allv", in);
    counts_and_displs(send_counts, &w->ints[0], &w->ints[1]);
    counts_and_displs(recv_counts, &w->ints[2], &w->ints[3]);
    const MPI_Datatype t = mpi_type(in.dtype);
    mpi_check(MPI_Ialltoallv(in.data, w->ints[0].data(), w->ints[1].data(), t, out.data,
                             w->ints[2].data(), w->ints[3].data(), t, comm_, w->request()),
              "MPI_Ialltoallv", rank_, size_);
    return w;
  }

  std::unique_ptr<Work> broadcast_async(TensorView inout, int root) override {
    detail::check_broadcast(inout, root, rank_, size_);
    detail::check_fits_int(inout.numel, "broadcast", "inout", rank_);
    auto w = make_work("broadcast", inout);
    mpi_check(MPI_Ibcast(inout.data, to_int(inout.numel), mpi_type(inout.dtype), root, comm_,
                         w->request()),
              "MPI_Ibcast", rank_, size_);
    return w;
  }

  std::unique_ptr<Work> barrier_async() override {
    auto w = std::make_unique<MpiWork>(rank_, size_, timeout(), "barrier");
    mpi_check(MPI_Ibarrier(comm_, w->request()), "MPI_Ibarrier", rank_, size_);
    return w;
  }

 private:
  std::unique_ptr<MpiWork> make_work(const char* verb, const TensorView& v) const {
    std::string what = std::string(verb) + " of " + detail::format_bytes(v.nbytes()) + " (" +
                       dtype_name(v.dtype) + ")";
    return std::make_unique<MpiWork>(rank_, size_, timeout(), std::move(what));
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace

namespace detail {

void ensure_mpi_initialized() {
  static std::once_flag once;
  std::call_once(once, [] {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return;
    int provided = 0;
    // THREAD_MULTIPLE so the trainer may drive communication from its own thread.
    const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    TERSE_CHECK(rc == MPI_SUCCESS, CommError, "MPI_Init_thread failed: ", mpi_error_string(rc),
                "; start the job with mpirun/mpiexec and check the Open MPI installation");
    g_we_initialized = true;
    std::atexit(finalize_if_ours);
  });
}

std::unique_ptr<Communicator> make_mpi_communicator() {
  return std::make_unique<MpiCommunicator>();
}

}  // namespace detail

bool mpi_available() { return true; }

std::string mpi_library_version() {
  char buf[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  // Callable before MPI_Init (MPI-3).
  if (MPI_Get_library_version(buf, &len) != MPI_SUCCESS) return "";
  std::string s(buf, static_cast<size_t>(len));
  const size_t nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

void abort_job(int code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

}  // namespace terse

#include "terse/comm/algorithms/power_sgd.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "power_sgd_internal.h"
#include "terse/comm/algorithms/bucket_layout.h"
#include "terse/core/check.h"
#include "terse/core/finite.h"
#include "terse/core/philox.h"
#include "terse/kernels/cpu_threads.h"
#include "terse/kernels/cuda_power_sgd.h"

namespace terse {

namespace power_sgd_detail {

std::string shape_str(int64_t rows, int64_t cols) { return detail::str_cat(rows, "x", cols); }

bool has_zero_column(const float* q, int64_t cols, int64_t r) {
  for (int64_t k = 0; k < r; ++k) {
    bool zero = true;
    for (int64_t j = 0; j < cols && zero; ++j) zero = q[j * r + k] == 0.0f;
    if (zero) return true;
  }
  return false;
}

bool error_may_overflow(const float* e, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!(std::fabs(e[i]) < 0x1p103f)) return true;
  }
  return false;
}

PowerSgdReport dense_report(int64_t total, int world, uint64_t extra_bytes) {
  PowerSgdReport rep;
  rep.path = "dense";
  rep.dense_elements = total;
  rep.payload_bytes = 4 * static_cast<uint64_t>(total);
  rep.bytes_dense = ring_all_reduce_bytes(4 * static_cast<uint64_t>(total), world);
  rep.bytes_sent =
      extra_bytes + ring_all_reduce_bytes(4 * static_cast<uint64_t>(total + world), world);
  return rep;
}

void check_p_sum_finite(bool finite, int rank) {
  TERSE_CHECK(finite, NumericalError, "PowerSgd::run on rank ", rank,
              ": the sum over ranks of P = (M + e) Q overflowed to a non-finite value although "
              "every rank's P was finite; no gradient and no PowerSgd state was changed: skip "
              "this step (e.g. lower the loss scale or the learning rate) and call run() again");
}

void check_p_orthogonalized(bool finite, int rank, size_t i, int64_t rows, int64_t cols,
                            double eps) {
  TERSE_CHECK(finite, NumericalError, "PowerSgd::run on rank ", rank,
              ": orthogonalizing P of tensor ", i, " (", shape_str(rows, cols),
              ") gave non-finite values (an all-zero column with orthogonalization_epsilon ", eps,
              "); no gradient and no PowerSgd state was changed: pass "
              "orthogonalization_epsilon > 0 (e.g. 1e-8)");
}

// Modified Gram-Schmidt over the r columns of the row-major n x r matrix `a`, as torch's
// _orthogonalize_gram_schmidt: col /= (||col|| + eps) (eps == 0: col /= ||col||), then that
// column's component is removed from every later column. Sums in double.
void orthogonalize(float* a, int64_t n, int64_t r, double eps) {
  for (int64_t i = 0; i < r; ++i) {
    double ss = 0.0;
    for (int64_t row = 0; row < n; ++row) {
      const double v = a[row * r + i];
      ss += v * v;
    }
    const float norm = static_cast<float>(std::sqrt(ss));
    const float denom = eps == 0.0 ? norm : norm + static_cast<float>(eps);
    for (int64_t row = 0; row < n; ++row) a[row * r + i] /= denom;
    for (int64_t j = i + 1; j < r; ++j) {
      double dot = 0.0;
      for (int64_t row = 0; row < n; ++row) {
        dot += static_cast<double>(a[row * r + i]) * a[row * r + j];
      }
      const float d = static_cast<float>(dot);
      for (int64_t row = 0; row < n; ++row) a[row * r + j] -= d * a[row * r + i];
    }
  }
}

}  // namespace power_sgd_detail

using power_sgd_detail::check_p_orthogonalized;
using power_sgd_detail::check_p_sum_finite;
using power_sgd_detail::dense_report;
using power_sgd_detail::has_zero_column;
using power_sgd_detail::host_all_gather;
using power_sgd_detail::host_all_gatherv;
using power_sgd_detail::kFlagBadArguments;
using power_sgd_detail::orthogonalize;
using power_sgd_detail::shape_str;

namespace {

constexpr int64_t kVersion = 1;
// Header of the first call's shape check, per rank: status, tensor count, shape hash.
constexpr int64_t kHeaderWords = 3;
constexpr int64_t kStatusOk = 0, kStatusBadArguments = 1, kStatusStateMismatch = 2;
// Sizes above this cannot be real gradients and would overflow byte counts.
constexpr int64_t kMaxNumel = int64_t{1} << 48;

// Sum of a[j] * b[j] in f32 with 8 interleaved partial sums (so the compiler can vectorize it
// without reassociating; also more accurate than one running sum), added pairwise at the end.
float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += a[j + l] * b[j + l];
  }
  for (int l = 0; j < n; ++j, ++l) acc[l] += a[j] * b[j];
  return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

// t (r x cols) = the transpose of q (cols x r), so each column of Q is contiguous.
void transpose(const float* q, int64_t cols, int64_t r, float* t) {
  for (int64_t j = 0; j < cols; ++j) {
    for (int64_t k = 0; k < r; ++k) t[k * cols + j] = q[j * r + k];
  }
}

// The passes over M below split rows (P = M Q, M <- P Q^T) or columns (Q = M^T P) over
// cpu_threads() OpenMP threads. Each element is still summed over the same terms in the same
// order, so the bits do not depend on the thread count. Matrices below kThreadedNumel run on
// the calling thread: waking the threads costs more than the pass.
constexpr int64_t kThreadedNumel = int64_t{1} << 16;

int pass_threads(int64_t numel) { return numel >= kThreadedNumel ? cpu_threads() : 1; }

int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// p (rows x r) = (M + e) Q, Q given as its transpose qt (r x cols); e may be null. scratch holds
// a row of M + e per thread.
void project_rows(const float* m, const float* e, const float* qt, int64_t rows, int64_t cols,
                  int64_t r, float* p, std::vector<float>& scratch) {
  const int threads = pass_threads(rows * cols);
  scratch.resize(static_cast<size_t>(threads * cols));
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t a = 0; a < rows; ++a) {
    const float* mrow = m + a * cols;
    if (e != nullptr) {
      float* row = scratch.data() + thread_index() * cols;
      const float* erow = e + a * cols;
      for (int64_t j = 0; j < cols; ++j) row[j] = mrow[j] + erow[j];
      mrow = row;
    }
    for (int64_t k = 0; k < r; ++k) p[a * r + k] = dot(mrow, qt + k * cols, cols);
  }
}

// With e (non-null) M <- M + e first; then qt (r x cols, zeroed by the caller) = (M^T p)^T,
// accumulated row by row of M. Threads take ranges of columns, so each element of qt sums the
// rows in order, as on one thread.
void back_project(float* g, const float* e, const float* p, int64_t rows, int64_t cols, int64_t r,
                  float* qt) {
  const int threads = pass_threads(rows * cols);
#pragma omp parallel num_threads(threads)
  {
    int tasks = 1;
#ifdef _OPENMP
    tasks = omp_get_num_threads();
#endif
    // Ranges of 16 columns: 64-byte pieces of each row, none shared between two threads.
    const int64_t units = (cols + 15) / 16;
    const int64_t j0 = std::min(cols, 16 * (units * thread_index() / tasks));
    const int64_t j1 = std::min(cols, 16 * (units * (thread_index() + 1) / tasks));
    for (int64_t a = 0; a < rows && j0 < j1; ++a) {
      float* grow = g + a * cols;
      if (e != nullptr) {
        const float* erow = e + a * cols;
        for (int64_t j = j0; j < j1; ++j) grow[j] += erow[j];
      }
      for (int64_t k = 0; k < r; ++k) {
        const float pk = p[a * r + k];
        float* t = qt + k * cols;
        for (int64_t j = j0; j < j1; ++j) t[j] += grow[j] * pk;
      }
    }
  }
}

// M <- P Q^T row by row (each row summed over k in order), and with e (non-null)
// e <- M - P Q^T first. scratch holds a row of P Q^T per thread.
void reconstruct_rows(float* g, float* e, const float* p, const float* qt, int64_t rows,
                      int64_t cols, int64_t r, std::vector<float>& scratch) {
  const int threads = pass_threads(rows * cols);
  scratch.resize(static_cast<size_t>(threads * cols));
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t a = 0; a < rows; ++a) {
    float* approx = scratch.data() + thread_index() * cols;
    std::fill(approx, approx + cols, 0.0f);
    for (int64_t k = 0; k < r; ++k) {
      const float pk = p[a * r + k];
      const float* t = qt + k * cols;
      for (int64_t j = 0; j < cols; ++j) approx[j] += pk * t[j];
    }
    float* grow = g + a * cols;
    if (e != nullptr) {
      float* erow = e + a * cols;
      for (int64_t j = 0; j < cols; ++j) erow[j] = grow[j] - approx[j];
    }
    std::copy(approx, approx + cols, grow);
  }
}

// r' for a rows x cols matrix when it is compressed, 0 when it goes dense.
int64_t compressed_rank(int64_t rows, int64_t cols, const PowerSgd::Options& o) {
  const int64_t r = std::min({rows, cols, static_cast<int64_t>(o.rank)});
  if (r <= 0) return 0;
  const double low_rank = static_cast<double>(rows + cols) * static_cast<double>(r);
  const double full = static_cast<double>(rows) * static_cast<double>(cols);
  return low_rank * o.min_compression_rate < full ? r : 0;
}

std::vector<int64_t> shape_list(const std::vector<MatrixView>& grads) {
  std::vector<int64_t> s;
  s.reserve(2 * grads.size());
  for (const MatrixView& g : grads) {
    s.push_back(g.rows);
    s.push_back(g.cols);
  }
  return s;
}

}  // namespace

void power_sgd_random_q(uint64_t seed, uint64_t index, int64_t step_key, float* q, int64_t count) {
  const Philox4x32 gen(seed);
  const uint64_t stream = (index & 0xffffffffu) | (static_cast<uint64_t>(step_key + 1) << 32);
  constexpr float kTwoPi = 6.28318530717958647692f;
  for (int64_t b = 0; b * 4 < count; ++b) {
    const Philox4x32::U4 u = gen.at(static_cast<uint64_t>(b), stream);
    const uint32_t bits[4] = {u.x, u.y, u.z, u.w};
    float z[4];
    for (int h = 0; h < 2; ++h) {
      // u1 in (0, 1] so the log is finite; u2 in [0, 1).
      const float u1 = 1.0f - Philox4x32::uniform(bits[2 * h]);
      const float u2 = Philox4x32::uniform(bits[2 * h + 1]);
      const float radius = std::sqrt(-2.0f * std::log(u1));
      z[2 * h] = radius * std::cos(kTwoPi * u2);
      z[2 * h + 1] = radius * std::sin(kTwoPi * u2);
    }
    for (int k = 0; k < 4 && b * 4 + k < count; ++k) q[b * 4 + k] = z[k];
  }
}

PowerSgd::PowerSgd(Communicator& comm, Options options) : Algorithm(comm), options_(options) {
  TERSE_CHECK(options_.rank >= 1, InvalidArgument, "PowerSgd: rank must be >= 1, got ",
              options_.rank, "; pass the approximation rank (1, 2, 4, ...)");
  TERSE_CHECK(std::isfinite(options_.min_compression_rate) && options_.min_compression_rate > 0.0,
              InvalidArgument, "PowerSgd: min_compression_rate must be finite and > 0, got ",
              options_.min_compression_rate, "; pass e.g. 2 (torch's default)");
  TERSE_CHECK(options_.start_iter >= 0, InvalidArgument, "PowerSgd: start_iter must be >= 0, got ",
              options_.start_iter, "; pass the number of dense warm-up steps (torch: 10)");
  TERSE_CHECK(
      std::isfinite(options_.orthogonalization_epsilon) && options_.orthogonalization_epsilon >= 0,
      InvalidArgument, "PowerSgd: orthogonalization_epsilon must be finite and >= 0, got ",
      options_.orthogonalization_epsilon, "; pass 0 (torch's default) or 1e-8");
}

PowerSgd::~PowerSgd() = default;

std::string PowerSgd::check_local(const std::vector<MatrixView>& grads) const {
  for (size_t i = 0; i < grads.size(); ++i) {
    const MatrixView& g = grads[i];
    if (g.rows < 0 || g.cols < 0 || (g.cols > 0 && g.rows > kMaxNumel / g.cols)) {
      return detail::str_cat("tensor ", i, " has shape ", shape_str(g.rows, g.cols),
                             "; pass rows >= 0, cols >= 0 and rows * cols <= 2^48");
    }
    if (g.data == nullptr && g.rows * g.cols > 0) {
      return detail::str_cat("tensor ", i, " (", shape_str(g.rows, g.cols),
                             ") has a null data pointer; pass the gradient's buffer");
    }
    if (g.device != grads[0].device) {
      return detail::str_cat("tensor ", i, " is on ", g.device.str(), " but tensor 0 on ",
                             grads[0].device.str(), "; pass every gradient on one device");
    }
    if (g.device.is_cuda() && g.rows * g.cols > 0 &&
        !cuda_power_sgd_is_device_memory(g.data, g.device.index)) {
      return detail::str_cat("tensor ", i, " (", shape_str(g.rows, g.cols), ") is a view on ",
                             g.device.str(),
                             " but its data is not memory of that GPU (a host pointer, another "
                             "GPU's memory, or a build without CUDA); pass the view's true device");
    }
  }
  const Device comm_device = comm().device();
  if (comm_device.is_cuda() && !grads.empty() && grads[0].device != comm_device) {
    return detail::str_cat("the communicator (", comm().backend(), ") moves memory of ",
                           comm_device.str(), " but the gradients are on ", grads[0].device.str(),
                           "; pass views on its GPU, or use a host communicator (mpi)");
  }
  if (!validated_) return std::string();
  if (grads.size() != slots_.size()) {
    return detail::str_cat("run() got ", grads.size(), " tensors but ", slots_.size(),
                           " on its first call; pass the same tensors every step (a new model "
                           "needs a new PowerSgd)");
  }
  for (size_t i = 0; i < grads.size(); ++i) {
    if (grads[i].rows != slots_[i].rows || grads[i].cols != slots_[i].cols) {
      return detail::str_cat("tensor ", i, " is ", shape_str(grads[i].rows, grads[i].cols),
                             " but was ", shape_str(slots_[i].rows, slots_[i].cols),
                             " on the first call; pass the same shapes every step (a new model "
                             "needs a new PowerSgd)");
    }
  }
  return std::string();
}

void PowerSgd::validate_shapes(const std::vector<MatrixView>& grads,
                               const std::string& local_error) {
  Communicator& c = comm();
  const int n = c.size();
  const int me = c.rank();
  const size_t un = static_cast<size_t>(n);

  const std::vector<int64_t> shapes = shape_list(grads);
  // A state loaded before the first run() must fit these shapes.
  std::string state_error;
  if (local_error.empty() && pending_check_) {
    if (grads.size() != slots_.size()) {
      state_error = detail::str_cat("the loaded PowerSgd state holds ", slots_.size(),
                                    " tensors but run() got ", grads.size(),
                                    "; load the checkpoint of this model");
    }
    for (size_t i = 0; state_error.empty() && i < grads.size(); ++i) {
      if (grads[i].rows != slots_[i].rows || grads[i].cols != slots_[i].cols) {
        state_error = detail::str_cat("the loaded PowerSgd state has tensor ", i, " as ",
                                      shape_str(slots_[i].rows, slots_[i].cols), " but run() got ",
                                      shape_str(grads[i].rows, grads[i].cols),
                                      "; load the checkpoint of this model");
      }
    }
  }
  int64_t header[kHeaderWords] = {
      !local_error.empty() ? kStatusBadArguments
                           : (!state_error.empty() ? kStatusStateMismatch : kStatusOk),
      static_cast<int64_t>(grads.size()), static_cast<int64_t>(bucket_layout_hash(shapes))};
  std::vector<int64_t> all(un * kHeaderWords);
  host_all_gather(c, TensorView::of(header, kHeaderWords),
                  TensorView::of(all.data(), static_cast<int64_t>(all.size())));
  auto h = [&](int r, int64_t w) { return all[static_cast<size_t>(r) * kHeaderWords + w]; };

  TERSE_CHECK(local_error.empty(), InvalidArgument, "PowerSgd::run on rank ", me, " of ", n, ": ",
              local_error);
  TERSE_CHECK(state_error.empty(), CorruptData, "PowerSgd::run on rank ", me, " of ", n, ": ",
              state_error);
  bool same = true;
  for (int r = 0; r < n; ++r) {
    TERSE_CHECK(h(r, 0) == kStatusOk, CommError, "PowerSgd::run on rank ", me, ": rank ", r,
                h(r, 0) == kStatusStateMismatch ? " loaded a state that does not fit its gradients"
                                                : " passed invalid gradients",
                " (its own error says which); fix that rank's call");
    TERSE_CHECK(h(r, 1) >= 0 && h(r, 1) <= kMaxNumel, CorruptData, "PowerSgd::run on rank ", me,
                ": rank ", r, " announced ", h(r, 1),
                " tensors; that rank does not run this algorithm");
    same = same && h(r, 1) == h(0, 1) && h(r, 2) == h(0, 2);
  }
  if (!same) {
    // The shapes travel only on a mismatch; every rank saw the same headers, so every rank is
    // here and throws.
    std::vector<int64_t> counts(un);
    int64_t total = 0;
    for (int r = 0; r < n; ++r) {
      counts[static_cast<size_t>(r)] = 2 * h(r, 1);
      total += 2 * h(r, 1);
    }
    std::vector<int64_t> everyone(static_cast<size_t>(total));
    host_all_gatherv(
        c, TensorView::of(const_cast<int64_t*>(shapes.data()), static_cast<int64_t>(shapes.size())),
        TensorView::of(everyone.data(), total), counts);
    std::vector<int64_t> offset(un + 1, 0);
    for (size_t r = 0; r < un; ++r) offset[r + 1] = offset[r] + counts[r];
    auto list_of = [&](int r) {
      const auto b = everyone.begin() + offset[static_cast<size_t>(r)];
      return std::vector<int64_t>(b, b + counts[static_cast<size_t>(r)]);
    };
    const std::vector<int64_t> rank0 = list_of(0);
    int other = 0;
    if (shapes == rank0) {
      for (int r = 1; r < n; ++r) {
        if (list_of(r) != rank0) {
          other = r;
          break;
        }
      }
    }
    const std::vector<int64_t> theirs = list_of(other);
    const size_t mine_count = grads.size(), their_count = theirs.size() / 2;
    auto describe = [](const std::vector<int64_t>& l, size_t i) {
      return 2 * i + 1 < l.size() ? shape_str(l[2 * i], l[2 * i + 1]) : std::string("none");
    };
    size_t i = 0;
    while (i < std::max(mine_count, their_count) && describe(shapes, i) == describe(theirs, i)) {
      ++i;
    }
    TERSE_THROW(InvalidArgument, "PowerSgd gradient shapes differ between ranks: tensor ", i,
                " is ", describe(shapes, i), " on rank ", me, " and ", describe(theirs, i),
                " on rank ", other, " (rank ", me, " passes ", mine_count, " tensors, rank ", other,
                " ", their_count, "); every rank must pass the same tensors in the same order");
  }
  plan(grads);
}

void PowerSgd::plan(const std::vector<MatrixView>& grads) {
  if (!pending_check_) {
    slots_.assign(grads.size(), Slot());
    dev_.reset();  // no state yet
    for (size_t i = 0; i < grads.size(); ++i) {
      slots_[i].rows = grads[i].rows;
      slots_[i].cols = grads[i].cols;
      slots_[i].r = compressed_rank(grads[i].rows, grads[i].cols, options_);
    }
  }
  pending_check_ = false;
  validated_ = true;
}

void PowerSgd::check_flags(const float* flags, const std::string& local_error) const {
  const int n = comm().size();
  const int me = comm().rank();
  TERSE_CHECK(local_error.empty(), InvalidArgument, "PowerSgd::run on rank ", me, " of ", n, ": ",
              local_error);
  for (int r = 0; r < n; ++r) {
    TERSE_CHECK(flags[r] >= 0.0f, CommError, "PowerSgd::run on rank ", me, ": rank ", r,
                " passed invalid gradients (its own error says which); fix that rank's call");
  }
  std::string bad;
  for (int r = 0; r < n; ++r) {
    if (flags[r] == 0.0f) continue;
    const size_t i = static_cast<size_t>(flags[r]) - 1;
    bad += detail::str_cat(
        bad.empty() ? "" : ", ", "rank ", r, " tensor ", i, " (",
        i < slots_.size() ? shape_str(slots_[i].rows, slots_[i].cols) : std::string("?"), ")");
  }
  TERSE_CHECK(bad.empty(), NumericalError, "PowerSgd::run on rank ", me,
              ": non-finite values (NaN or Inf) in the gradient, or in the gradient plus its "
              "error-feedback residual, of: ",
              bad,
              "; no gradient and no PowerSgd state was changed: skip this step (e.g. lower the "
              "loss scale or the learning rate) and call run() again");
}

PowerSgdReport PowerSgd::run(const std::vector<MatrixView>& grads, int64_t step) {
  const std::string local_error = check_local(grads);
  uint64_t extra_bytes = 0;
  double validate_s = 0;  // the first call's first collective: a compressed step's wait starts here
  if (!validated_) {
    const auto t0 = std::chrono::steady_clock::now();
    validate_shapes(grads, local_error);
    validate_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    extra_bytes = static_cast<uint64_t>(comm().size() - 1) * kHeaderWords * sizeof(int64_t);
  }
  // From here a local error is reported through the first collective (sized by the validated
  // shapes), so the other ranks fail with it instead of waiting for their timeout.
  const bool send_zeros = !local_error.empty();
  bool any_compressed = false;
  for (const Slot& s : slots_) any_compressed = any_compressed || s.r > 0;
  const bool dense = step < options_.start_iter || !any_compressed;
  // The GPU path for CUDA views, and for every call on a communicator of GPU memory (its buffers
  // must be there). A rank with bad arguments on a host communicator takes the CPU path, which
  // sends the same collectives without touching the views.
  int device = -1;
  if (comm().device().is_cuda()) {
    device = comm().device().index;
  } else if (!send_zeros && !grads.empty() && grads[0].device.is_cuda()) {
    device = grads[0].device.index;
  }
  if (device >= 0) {
    const CudaCurrentDevice current(device);
    move_state(Device::cuda(device));
    if (dense) return run_dense_device(grads, device, send_zeros, local_error, extra_bytes);
    PowerSgdReport rep =
        run_compressed_device(grads, step, device, send_zeros, local_error, extra_bytes);
    rep.wait_s += validate_s;
    return rep;
  }
  if (!send_zeros) move_state(Device::cpu());
  if (dense) return run_dense(grads, send_zeros, local_error, extra_bytes);
  PowerSgdReport rep = run_compressed(grads, step, send_zeros, local_error, extra_bytes);
  rep.wait_s += validate_s;
  return rep;
}

PowerSgdReport PowerSgd::run_dense(const std::vector<MatrixView>& grads, bool send_zeros,
                                   const std::string& local_error, uint64_t extra_bytes) {
  Communicator& c = comm();
  const int n = c.size();
  int64_t total = 0;
  for (const Slot& s : slots_) total += s.rows * s.cols;
  // One fused buffer: every tensor, then one verdict slot per rank.
  qbuf_.assign(static_cast<size_t>(total + n), 0.0f);
  float flag = send_zeros ? kFlagBadArguments : 0.0f;
  if (!send_zeros) {
    int64_t off = 0;
    for (size_t i = 0; i < slots_.size(); ++i) {
      const int64_t numel = slots_[i].rows * slots_[i].cols;
      if (numel > 0) std::memcpy(qbuf_.data() + off, grads[i].data, sizeof(float) * numel);
      if (flag == 0.0f && !all_finite(grads[i].data, numel)) flag = static_cast<float>(i + 1);
      off += numel;
    }
  }
  qbuf_[static_cast<size_t>(total + c.rank())] = flag;
  c.all_reduce(TensorView::of(qbuf_.data(), total + n), ReduceOp::kSum);
  check_flags(qbuf_.data() + total, local_error);

  const float w = static_cast<float>(n);
  int64_t off = 0;
  for (size_t i = 0; i < slots_.size(); ++i) {
    const int64_t numel = slots_[i].rows * slots_[i].cols;
    for (int64_t j = 0; j < numel; ++j) grads[i].data[j] = qbuf_[static_cast<size_t>(off + j)] / w;
    off += numel;
  }
  return dense_report(total, n, extra_bytes);
}

PowerSgd::Layout PowerSgd::layout() const {
  const size_t count = slots_.size();
  Layout l;
  l.poff.assign(count, 0);
  l.qoff.assign(count, 0);
  for (size_t i = 0; i < count; ++i) {
    const Slot& s = slots_[i];
    l.total += s.rows * s.cols;
    if (s.r == 0) continue;
    l.poff[i] = l.psize;
    l.qoff[i] = l.qsize;
    l.psize += s.rows * s.r;
    l.qsize += s.cols * s.r;
    ++l.compressed;
    l.payload += 4 * static_cast<uint64_t>((s.rows + s.cols) * s.r);
  }
  for (size_t i = 0; i < count; ++i) {
    const Slot& s = slots_[i];
    if (s.r != 0) continue;
    l.qoff[i] = l.qsize;
    l.qsize += s.rows * s.cols;
    l.dense_elements += s.rows * s.cols;
  }
  l.payload += 4 * static_cast<uint64_t>(l.dense_elements);
  return l;
}

PowerSgdReport PowerSgd::compressed_report(const Layout& l, uint64_t extra_bytes) const {
  const int n = comm().size();
  PowerSgdReport rep;
  rep.path = "powersgd";
  rep.compressed_matrices = l.compressed;
  rep.dense_elements = l.dense_elements;
  rep.payload_bytes = l.payload;
  rep.bytes_dense = ring_all_reduce_bytes(4 * static_cast<uint64_t>(l.total), n);
  rep.bytes_sent = extra_bytes + recursive_doubling_bytes(4 * static_cast<uint64_t>(n), n) +
                   ring_all_reduce_bytes(4 * static_cast<uint64_t>(l.psize), n) +
                   ring_all_reduce_bytes(4 * static_cast<uint64_t>(l.qsize), n);
  return rep;
}

PowerSgdReport PowerSgd::run_compressed(const std::vector<MatrixView>& grads, int64_t step,
                                        bool send_zeros, const std::string& local_error,
                                        uint64_t extra_bytes) {
  Communicator& c = comm();
  const int n = c.size();
  const double eps = options_.orthogonalization_epsilon;
  const bool ef = options_.error_feedback;
  const size_t count = slots_.size();

  const Layout l = layout();
  const std::vector<int64_t>& poff = l.poff;
  const std::vector<int64_t>& qoff = l.qoff;
  const int64_t psize = l.psize, qsize = l.qsize;

  using Clock = std::chrono::steady_clock;
  const auto since = [](Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  };
  double compress_s = 0;
  auto tc = Clock::now();
  pbuf_.assign(static_cast<size_t>(psize), 0.0f);
  qbuf_.assign(static_cast<size_t>(qsize), 0.0f);
  float flag = send_zeros ? kFlagBadArguments : 0.0f;
  if (!send_zeros) {
    for (size_t i = 0; i < count && flag == 0.0f; ++i) {
      if (!all_finite(grads[i].data, slots_[i].rows * slots_[i].cols)) {
        flag = static_cast<float>(i + 1);
      }
    }
  }
  // P = (M + e) Q with an orthogonalized Q; nothing of the caller's or of this object's state is
  // written before every rank's verdict is known.
  for (size_t i = 0; i < count && flag == 0.0f; ++i) {
    const Slot& s = slots_[i];
    if (s.r == 0) continue;
    const int64_t rows = s.rows, cols = s.cols, r = s.r;
    float* q = qbuf_.data() + qoff[i];
    if (options_.warm_start && !s.q.empty() && !has_zero_column(s.q.data(), cols, r)) {
      std::copy(s.q.begin(), s.q.end(), q);
    } else if (options_.warm_start && !s.q.empty()) {
      // A step whose average gradient was zero leaves a zero Q, from which the power step
      // never leaves zero (torch's hook stays stuck there): draw afresh, keyed by the step.
      power_sgd_random_q(options_.seed, i, step, q, cols * r);
    } else {
      power_sgd_random_q(options_.seed, i, options_.warm_start ? -1 : step, q, cols * r);
    }
    orthogonalize(q, cols, r, eps);
    float* p = pbuf_.data() + poff[i];
    const float* m = grads[i].data;
    const float* e = ef && !s.error.empty() ? s.error.data() : nullptr;
    qt_.resize(static_cast<size_t>(cols * r));
    transpose(q, cols, r, qt_.data());
    project_rows(m, e, qt_.data(), rows, cols, r, p, row_);
    // M + e can overflow although both are finite.
    if (!all_finite(p, rows * r)) flag = static_cast<float>(i + 1);
  }
  compress_s += since(tc);
  // The verdicts go first, alone: this collective returns when the slowest rank has computed its
  // P, so its time is the wait for stragglers (the report's wait_s), apart from moving P.
  verdicts_.assign(static_cast<size_t>(n), 0.0f);
  verdicts_[static_cast<size_t>(c.rank())] = flag;
  const auto tw = Clock::now();
  c.all_reduce(TensorView::of(verdicts_.data(), n), ReduceOp::kSum);
  const double wait_s = since(tw);
  check_flags(verdicts_.data(), local_error);
  c.all_reduce(TensorView::of(pbuf_.data(), psize), ReduceOp::kSum);
  // Every rank holds the same sums, so every rank takes this branch alike.
  check_p_sum_finite(all_finite(pbuf_.data(), psize), c.rank());

  // Orthogonalize every P before committing: with eps = 0 an all-zero P gives NaN, and every
  // rank holds the same P, so every rank sees it alike.
  tc = Clock::now();
  for (size_t i = 0; i < count; ++i) {
    const Slot& s = slots_[i];
    if (s.r == 0) continue;
    float* p = pbuf_.data() + poff[i];
    orthogonalize(p, s.rows, s.r, eps);
    check_p_orthogonalized(all_finite(p, s.rows * s.r), c.rank(), i, s.rows, s.cols, eps);
  }
  // Committed: M <- M + e in the gradient, Q <- M^T P (orthogonalized P), in one pass.
  for (size_t i = 0; i < count; ++i) {
    Slot& s = slots_[i];
    float* g = grads[i].data;
    if (s.r == 0) {
      const int64_t numel = s.rows * s.cols;
      if (numel > 0) std::memcpy(qbuf_.data() + qoff[i], g, sizeof(float) * numel);
      continue;
    }
    const int64_t rows = s.rows, cols = s.cols, r = s.r;
    const float* p = pbuf_.data() + poff[i];
    const bool add_error = ef && !s.error.empty();
    if (ef && !add_error) s.error.assign(static_cast<size_t>(rows * cols), 0.0f);
    // Q^T (r x cols) accumulated row by row of M: contiguous axpys.
    qt_.assign(static_cast<size_t>(cols * r), 0.0f);
    back_project(g, add_error ? s.error.data() : nullptr, p, rows, cols, r, qt_.data());
    float* q = qbuf_.data() + qoff[i];
    for (int64_t j = 0; j < cols; ++j) {
      for (int64_t k = 0; k < r; ++k) q[j * r + k] = qt_[static_cast<size_t>(k * cols + j)];
    }
  }
  compress_s += since(tc);
  c.all_reduce(TensorView::of(qbuf_.data(), qsize), ReduceOp::kSum);

  tc = Clock::now();
  const float w = static_cast<float>(n);
  for (size_t i = 0; i < count; ++i) {
    Slot& s = slots_[i];
    float* g = grads[i].data;
    float* q = qbuf_.data() + qoff[i];
    if (s.r == 0) {
      for (int64_t j = 0; j < s.rows * s.cols; ++j) g[j] = q[j] / w;
      continue;
    }
    const int64_t rows = s.rows, cols = s.cols, r = s.r;
    for (int64_t j = 0; j < cols * r; ++j) q[j] /= w;
    const float* p = pbuf_.data() + poff[i];
    qt_.resize(static_cast<size_t>(cols * r));
    transpose(q, cols, r, qt_.data());
    reconstruct_rows(g, ef ? s.error.data() : nullptr, p, qt_.data(), rows, cols, r, row_);
    if (options_.warm_start) s.q.assign(q, q + cols * r);
  }
  compress_s += since(tc);

  PowerSgdReport rep = compressed_report(l, extra_bytes);
  rep.compress_s = compress_s;
  rep.wait_s = wait_s;
  return rep;
}

size_t PowerSgd::state_bytes() const {
  size_t b = 0;
  for (const Slot& s : slots_) b += sizeof(float) * (s.q.size() + s.error.size());
  if (dev_) {
    for (const CudaBuffer& q : dev_->q) b += q.bytes();
    for (const CudaBuffer& e : dev_->error) b += e.bytes();
  }
  return b;
}

Device PowerSgd::state_device() const { return dev_ ? Device::cuda(dev_->device) : Device::cpu(); }

StateDict PowerSgd::state_dict() const {
  StateDict d;
  d.ints["powersgd.version"] = kVersion;
  d.ints["powersgd.rank"] = options_.rank;
  if (!validated_ && !pending_check_) return d;
  std::vector<int64_t> shapes;
  for (const Slot& s : slots_) {
    shapes.push_back(s.rows);
    shapes.push_back(s.cols);
  }
  d.tensors["powersgd.shapes"] =
      StateTensor::copy_of(TensorView::of(shapes.data(), static_cast<int64_t>(shapes.size())),
                           {static_cast<int64_t>(slots_.size()), 2});
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    std::vector<float> q = host_q(i), error = host_error(i);
    if (!q.empty()) {
      d.tensors[detail::str_cat("powersgd.q.", i)] = StateTensor::copy_of(
          TensorView::of(q.data(), static_cast<int64_t>(q.size())), {s.cols, s.r});
    }
    if (!error.empty()) {
      d.tensors[detail::str_cat("powersgd.error.", i)] = StateTensor::copy_of(
          TensorView::of(error.data(), static_cast<int64_t>(error.size())), {s.rows, s.cols});
    }
  }
  return d;
}

namespace {

// Index i of "<prefix><i>", or -1 when `key` is not of that form.
int64_t key_index(const std::string& key, const std::string& prefix) {
  if (key.compare(0, prefix.size(), prefix) != 0 || key.size() == prefix.size() ||
      key.size() > prefix.size() + 15) {
    return -1;
  }
  int64_t v = 0;
  for (size_t k = prefix.size(); k < key.size(); ++k) {
    if (key[k] < '0' || key[k] > '9') return -1;
    v = v * 10 + (key[k] - '0');
  }
  return v;
}

void load_floats(const StateTensor& t, const std::string& key, int64_t d0, int64_t d1,
                 std::vector<float>* out) {
  TERSE_CHECK(t.dtype == DType::kF32, CorruptData, "PowerSgd state ", key, " holds ",
              dtype_name(t.dtype), "; expected f32 (the checkpoint is damaged)");
  const std::vector<int64_t> want = {d0, d1};
  TERSE_CHECK(t.shape == want && t.bytes.size() == sizeof(float) * static_cast<size_t>(d0 * d1),
              CorruptData, "PowerSgd state ", key, " has shape ",
              t.shape.size() == 2 ? shape_str(t.shape[0], t.shape[1]) : std::string("(not 2-D)"),
              " and ", t.bytes.size(), " bytes; expected ", shape_str(d0, d1),
              " f32 (a checkpoint of another model or rank, or a damaged one)");
  out->resize(static_cast<size_t>(d0 * d1));
  if (!out->empty()) std::memcpy(out->data(), t.bytes.data(), t.bytes.size());
  TERSE_CHECK(all_finite(out->data(), d0 * d1), CorruptData, "PowerSgd state ", key,
              " holds non-finite values; load an earlier checkpoint");
}

}  // namespace

void PowerSgd::load_state_dict(const StateDict& s) {
  const auto version = s.ints.find("powersgd.version");
  TERSE_CHECK(version != s.ints.end() && version->second == kVersion, CorruptData,
              "PowerSgd state: powersgd.version is ",
              version == s.ints.end() ? std::string("missing") : std::to_string(version->second),
              ", expected ", kVersion, "; pass a state saved by PowerSgd::state_dict");
  const int64_t rank = s.int_value("powersgd.rank");
  TERSE_CHECK(rank == options_.rank, CorruptData, "PowerSgd state was saved with rank ", rank,
              " but this PowerSgd has rank ", options_.rank, "; construct it with the saved rank");
  const auto shapes_it = s.tensors.find("powersgd.shapes");
  std::vector<Slot> slots;
  if (shapes_it == s.tensors.end()) {
    for (const auto& kv : s.tensors) {
      TERSE_CHECK(kv.first.compare(0, 9, "powersgd.") != 0, CorruptData, "PowerSgd state holds ",
                  kv.first, " but no powersgd.shapes; the checkpoint is damaged");
    }
    // A state saved before any run(): keep the shapes seen so far, drop Q and e.
    for (Slot& slot : slots_) {
      slot.q.clear();
      slot.error.clear();
    }
    if (dev_) {
      for (CudaBuffer& q : dev_->q) q = CudaBuffer();
      for (CudaBuffer& e : dev_->error) e = CudaBuffer();
    }
    return;
  }
  const StateTensor& st = shapes_it->second;
  TERSE_CHECK(
      st.dtype == DType::kI64 && st.shape.size() == 2 && st.shape[1] == 2 && st.shape[0] >= 0 &&
          st.bytes.size() == sizeof(int64_t) * 2 * static_cast<size_t>(st.shape[0]),
      CorruptData, "PowerSgd state powersgd.shapes must be an i64 tensor of shape {count, 2}, got ",
      dtype_name(st.dtype), " with ", st.shape.size(), " dimensions and ", st.bytes.size(),
      " bytes; the checkpoint is damaged");
  const size_t count = static_cast<size_t>(st.shape[0]);
  std::vector<int64_t> dims(2 * count);
  if (count > 0) std::memcpy(dims.data(), st.bytes.data(), st.bytes.size());
  slots.resize(count);
  for (size_t i = 0; i < count; ++i) {
    const int64_t rows = dims[2 * i], cols = dims[2 * i + 1];
    TERSE_CHECK(rows >= 0 && cols >= 0 && (cols == 0 || rows <= kMaxNumel / cols), CorruptData,
                "PowerSgd state powersgd.shapes gives tensor ", i, " the shape ",
                shape_str(rows, cols), "; the checkpoint is damaged");
    slots[i].rows = rows;
    slots[i].cols = cols;
    slots[i].r = compressed_rank(rows, cols, options_);
    if (validated_) {
      TERSE_CHECK(i < slots_.size() && slots_[i].rows == rows && slots_[i].cols == cols,
                  CorruptData, "PowerSgd state has tensor ", i, " as ", shape_str(rows, cols),
                  " but run() was given ",
                  i < slots_.size() ? shape_str(slots_[i].rows, slots_[i].cols)
                                    : std::string("no such tensor"),
                  "; load the checkpoint of this model");
    }
  }
  TERSE_CHECK(!validated_ || count == slots_.size(), CorruptData, "PowerSgd state holds ", count,
              " tensors but run() was given ", slots_.size(),
              "; load the checkpoint of this model");
  for (const auto& kv : s.tensors) {
    const std::string& key = kv.first;
    if (key.compare(0, 9, "powersgd.") != 0 || key == "powersgd.shapes") continue;
    int64_t i = key_index(key, "powersgd.q.");
    const bool is_q = i >= 0;
    if (!is_q) i = key_index(key, "powersgd.error.");
    TERSE_CHECK(i >= 0, CorruptData, "PowerSgd state holds the unknown key ", key,
                "; the checkpoint is damaged or from another version");
    TERSE_CHECK(static_cast<size_t>(i) < count && slots[static_cast<size_t>(i)].r > 0, CorruptData,
                "PowerSgd state holds ", key, " but tensor ", i,
                static_cast<size_t>(i) < count ? " is not compressed with these options"
                                               : " does not exist",
                "; construct PowerSgd with the saved options");
    Slot& slot = slots[static_cast<size_t>(i)];
    if (is_q) {
      load_floats(kv.second, key, slot.cols, slot.r, &slot.q);
    } else {
      load_floats(kv.second, key, slot.rows, slot.cols, &slot.error);
    }
  }
  if (dev_) {
    // Uploaded before anything changes: a failing upload leaves the state as it was.
    std::unique_ptr<DeviceState> d = make_device_state(slots, dev_->device);
    for (Slot& slot : slots) {
      slot.q = std::vector<float>();
      slot.error = std::vector<float>();
    }
    dev_ = std::move(d);
  }
  slots_ = std::move(slots);
  if (!validated_) pending_check_ = true;
}

}  // namespace terse

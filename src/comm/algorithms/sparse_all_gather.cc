#include "terse/comm/algorithms/sparse_all_gather.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "sparse_internal.h"
#include "staged_collectives.h"
#include "terse/core/check.h"
#include "terse/kernels/cuda_buffer.h"
#include "terse/kernels/cuda_power_sgd.h"
#include "terse/kernels/cuda_sparse_blocks.h"

namespace terse {

using algorithms_detail::device_all_gatherv;
using algorithms_detail::device_all_reduce;
using algorithms_detail::host_all_gather;
using sparse_detail::bad_index_reason;
using sparse_detail::check_arguments;
using sparse_detail::first_bad_index;
using sparse_detail::index_at;
using sparse_detail::kPairBytes;

uint64_t ring_all_reduce_bytes(uint64_t nbytes, int world_size) {
  if (world_size <= 1) return 0;
  const uint64_t n = static_cast<uint64_t>(world_size);
  return 2 * (n - 1) * nbytes / n;
}

uint64_t recursive_doubling_bytes(uint64_t nbytes, int world_size) {
  uint64_t rounds = 0;
  for (int64_t reach = 1; reach < world_size; reach *= 2) ++rounds;
  return rounds * nbytes;
}

// The sparse path's gathered pairs on the GPU, kept between calls.
struct SparseAllGather::DeviceBuffers {
  CudaBuffer idx, val;
};

namespace {

// Header each rank all_gathers first: 4 x i64.
constexpr int64_t kHeaderWords = 4;
constexpr int64_t kCount = 0, kNumel = 1, kBadPos = 2, kBadValue = 3;
// kCount of a rank whose own arguments were invalid (it throws InvalidArgument itself).
constexpr int64_t kArgumentError = -1;

// The CorruptData of a received block whose first bad index is at `bad` (>= 0), with the index
// there and the one before it (-1 at position 0): the same text on the CPU and the GPU.
[[noreturn]] void throw_bad_block(int me, int r, int64_t bad, int64_t count, int64_t value,
                                  int64_t prev, int64_t numel) {
  TERSE_THROW(CorruptData, "sparse_all_gather on rank ", me, ": pairs received from rank ", r,
              ": at position ", bad, " of ", count, ", ", bad_index_reason(value, prev, 0, numel),
              "; the data was corrupted between ranks or rank ", r,
              " does not run this algorithm's wire format");
}

}  // namespace

SparseAllGather::SparseAllGather(Communicator& comm, Options options)
    : Algorithm(comm), options_(options) {}

SparseAllGather::~SparseAllGather() = default;

SparseAllGatherReport SparseAllGather::run(const SparseVector& mine, TensorView out) {
  Communicator& c = comm();
  const int n = c.size();
  const int me = c.rank();
  const size_t un = static_cast<size_t>(n);

  // 1. Header. A rank with bad arguments still joins, so the others fail at once instead of
  // waiting for their timeout. The header words go through the host on every communicator.
  const std::string arg_error = check_arguments(mine, out, c);
  const bool gpu = arg_error.empty() && out.device.is_cuda();
  const int device = out.device.index;
  // The views' GPU is current for every copy and launch below (the caller's is restored).
  const auto current = gpu ? std::make_unique<CudaCurrentDevice>(device) : nullptr;
  std::vector<int64_t> header(kHeaderWords, -1);
  if (!arg_error.empty()) {
    header[kCount] = kArgumentError;
  } else {
    header[kCount] = mine.count;
    header[kNumel] = out.numel;
    const int64_t bad =
        gpu ? cuda_first_bad_indices(device, mine.indices, {0, mine.count}, 0, out.numel)[0]
            : first_bad_index(mine.indices, mine.count, 0, out.numel);
    header[kBadPos] = bad;
    if (bad >= 0) header[kBadValue] = index_at(mine.indices, bad, mine.device);
  }
  std::vector<int64_t> headers(un * kHeaderWords);
  host_all_gather(c, TensorView::of(header.data(), kHeaderWords),
                  TensorView::of(headers.data(), static_cast<int64_t>(headers.size())));
  auto h = [&](int r, int64_t word) {
    return headers[static_cast<size_t>(r) * kHeaderWords + word];
  };

  TERSE_CHECK(arg_error.empty(), InvalidArgument, "sparse_all_gather on rank ", me, " of ", n, ": ",
              arg_error);
  for (int r = 0; r < n; ++r) {
    TERSE_CHECK(h(r, kCount) != kArgumentError, CommError, "sparse_all_gather on rank ", me,
                ": rank ", r,
                " passed invalid arguments (its own error says which); fix that rank's call");
  }
  for (int r = 1; r < n; ++r) {
    TERSE_CHECK(h(r, kNumel) == h(0, kNumel), InvalidArgument, "sparse_all_gather on rank ", me,
                ": rank ", r, " passed a vector of ", h(r, kNumel), " elements but rank 0 passed ",
                h(0, kNumel),
                "; every rank must pass the same bucket (run check_bucket_layout at start-up)");
  }
  const int64_t numel = out.numel;
  int64_t total = 0, max_count = 0;
  std::vector<int64_t> counts(un);
  for (int r = 0; r < n; ++r) {
    const int64_t cnt = h(r, kCount);
    TERSE_CHECK(cnt >= 0 && cnt <= numel, CorruptData, "sparse_all_gather on rank ", me, ": rank ",
                r, " announced ", cnt, " pairs for a vector of ", numel,
                " elements (must be in [0, numel]; the sender checks its own); the header was "
                "corrupted between ranks or rank ",
                r, " does not run this algorithm");
    const int64_t bad = h(r, kBadPos);
    TERSE_CHECK(bad < 0, CorruptData, "sparse_all_gather on rank ", me, ": rank ", r,
                " sent bad pairs: index ", h(r, kBadValue), " at position ", bad, " of its ", cnt,
                " (indices must be strictly increasing in [0, ", numel,
                ")); fix the compressor that produced rank ", r, "'s pairs");
    counts[static_cast<size_t>(r)] = cnt;
    total += cnt;
    max_count = std::max(max_count, cnt);
  }

  SparseAllGatherReport report;
  report.total_count = total;
  report.max_count = max_count;
  report.bytes_dense = ring_all_reduce_bytes(static_cast<uint64_t>(numel) * sizeof(float), n);
  const uint64_t un64 = static_cast<uint64_t>(n);
  report.bytes_sparse = (un64 - 1) * kPairBytes * static_cast<uint64_t>(total) / un64;
  const uint64_t header_bytes = (un64 - 1) * kHeaderWords * sizeof(int64_t);
  // Both paths cost (N-1)/N * 8 * x per rank with x = total_count (pairs) or numel (dense), so
  // the byte comparison is exact in integers.
  report.dense_fallback = options_.allow_dense_fallback && n > 1 && total > numel;
  float* dst = out.as<float>();
  const float scale_div = static_cast<float>(n);

  if (report.dense_fallback) {
    // 2. Dense: scatter this rank's (already validated) pairs into a zero vector; all_reduce.
    report.path = "dense";
    if (gpu) {
      cuda_zero(dst, sizeof(float) * static_cast<size_t>(numel));
      cuda_sparse_add_blocks(device, mine.indices, mine.values, {0, mine.count}, dst);
      device_all_reduce(c, out, ReduceOp::kSum);
    } else {
      std::fill(dst, dst + numel, 0.0f);
      for (int64_t i = 0; i < mine.count; ++i) dst[mine.indices[i]] += mine.values[i];
      c.all_reduce(out, ReduceOp::kSum);
    }
    report.bytes_sent = header_bytes + report.bytes_dense;
  } else if (gpu) {
    report.path = "sparse";
    gather_device(mine, counts, total, out);
    report.bytes_sent = header_bytes + (un64 - 1) * kPairBytes * static_cast<uint64_t>(mine.count);
  } else {
    // 3. Sparse: indices then values, every rank's block in rank order.
    report.path = "sparse";
    std::vector<int32_t> all_idx(static_cast<size_t>(total));
    std::vector<float> all_val(static_cast<size_t>(total));
    c.all_gatherv(TensorView::of(const_cast<int32_t*>(mine.indices), mine.count),
                  TensorView::of(all_idx.data(), total), counts);
    c.all_gatherv(TensorView::of(const_cast<float*>(mine.values), mine.count),
                  TensorView::of(all_val.data(), total), counts);
    // Validate every received block before writing anything: a corrupt peer must not cause an
    // out-of-bounds write.
    int64_t offset = 0;
    for (int r = 0; r < n; ++r) {
      const int64_t cnt = counts[static_cast<size_t>(r)];
      const int32_t* idx = all_idx.data() + offset;
      const int64_t bad = first_bad_index(idx, cnt, 0, numel);
      if (bad >= 0) throw_bad_block(me, r, bad, cnt, idx[bad], bad > 0 ? idx[bad - 1] : -1, numel);
      offset += cnt;
    }
    std::fill(dst, dst + numel, 0.0f);
    for (int64_t i = 0; i < total; ++i) {
      dst[all_idx[static_cast<size_t>(i)]] += all_val[static_cast<size_t>(i)];
    }
    report.bytes_sent = header_bytes + (un64 - 1) * kPairBytes * static_cast<uint64_t>(mine.count);
  }
  if (options_.reduction == SparseReduction::kAverage && n > 1) {
    if (gpu) {
      cuda_divide(out, scale_div);  // IEEE division: the bits of the loop below
    } else {
      for (int64_t i = 0; i < numel; ++i) dst[i] /= scale_div;
    }
  }
  if (gpu) cuda_sparse_wait(device);
  return report;
}

void SparseAllGather::gather_device(const SparseVector& mine, const std::vector<int64_t>& counts,
                                    int64_t total, TensorView out) {
  Communicator& c = comm();
  const int device = out.device.index;
  const int64_t numel = out.numel;
  if (!dev_) dev_ = std::make_unique<DeviceBuffers>();
  int32_t* idx = cuda_ensure<int32_t>(dev_->idx, device, total);
  float* val = cuda_ensure<float>(dev_->val, device, total);
  // In GPU memory on NCCL; through host copies of these pairs on a host communicator.
  device_all_gatherv(
      c, TensorView(const_cast<int32_t*>(mine.indices), mine.count, DType::kI32, out.device),
      TensorView(idx, total, DType::kI32, out.device), counts);
  device_all_gatherv(
      c, TensorView(const_cast<float*>(mine.values), mine.count, DType::kF32, out.device),
      TensorView(val, total, DType::kF32, out.device), counts);
  // Every received block validated before anything is written, as on the CPU.
  std::vector<int64_t> offsets(counts.size() + 1, 0);
  for (size_t r = 0; r < counts.size(); ++r) offsets[r + 1] = offsets[r] + counts[r];
  const std::vector<int64_t> bad = cuda_first_bad_indices(device, idx, offsets, 0, numel);
  for (size_t r = 0; r < counts.size(); ++r) {
    const int64_t j = bad[r];
    if (j < 0) continue;
    const int32_t* block = idx + offsets[r];
    throw_bad_block(c.rank(), static_cast<int>(r), j, counts[r], index_at(block, j, out.device),
                    j > 0 ? index_at(block, j - 1, out.device) : -1, numel);
  }
  // Rank 0's block, then rank 1's, ...: the CPU loop's additions.
  cuda_zero(out.data, sizeof(float) * static_cast<size_t>(numel));
  cuda_sparse_add_blocks(device, idx, val, offsets, out.as<float>());
}

}  // namespace terse

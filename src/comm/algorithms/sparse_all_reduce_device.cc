// SparseAllReduce's phases 1 to 4 on CUDA views (docs/collectives.md, "Sparse all-reduce", "On
// the GPU"): the pairs, the range sums, the selections and the gathered result stay in the GPU's
// memory (moved by the communicator itself on NCCL, staged through the host on a host
// communicator); the host sees only counts, block verdicts and the few indices that rebalancing
// reads. Each step is the host path's (sparse_all_reduce.cc) with the same checks and messages
// (sparse_all_reduce_internal.h), so out, kept, the report and the boundaries are its bits.
#include <memory>
#include <vector>

#include "sparse_all_reduce_internal.h"
#include "sparse_internal.h"
#include "staged_collectives.h"
#include "terse/comm/algorithms/sparse_all_reduce.h"
#include "terse/core/check.h"
#include "terse/kernels/cuda_buffer.h"
#include "terse/kernels/cuda_sparse_blocks.h"
#include "terse/kernels/cuda_sparse_select.h"

namespace terse {

using algorithms_detail::device_all_gatherv;
using algorithms_detail::device_all_to_allv;
using algorithms_detail::host_all_gather;
using algorithms_detail::host_all_to_all;
using sparse_all_reduce_detail::Block;
using sparse_all_reduce_detail::check_block;
using sparse_all_reduce_detail::check_fixed_block;
using sparse_all_reduce_detail::check_received_counts;
using sparse_all_reduce_detail::gather_candidate_counts;
using sparse_all_reduce_detail::kName;
using sparse_all_reduce_detail::rebalance_positions;
using sparse_all_reduce_detail::set_fixed_bytes;
using sparse_all_reduce_detail::set_water_fill_bytes;
using sparse_all_reduce_detail::sparse_path_report;
using sparse_detail::index_at;

// The GPU path's arrays, kept between calls (grown when a call needs more).
struct SparseAllReduce::DeviceBuffers {
  CudaBuffer send_idx, send_val, sent;  // kFixed phase 1: the padded blocks, my pairs' flags
  CudaBuffer recv_idx, recv_val;        // phase 1 received
  CudaBuffer sums, touched;             // phase 2: my range, dense
  CudaBuffer cand_idx, cand_val;        // phase 2: the touched indices and their sums
  CudaBuffer sel_idx, sel_val;          // phase 2: my selection
  CudaBuffer all_idx, all_val;          // phase 3 gathered
  CudaBuffer real_idx, real_val;        // kFixed phase 3: the gathered real pairs
};

// Here, where DeviceBuffers is complete.
SparseAllReduce::SparseAllReduce(Communicator& comm, Options options)
    : Algorithm(comm), options_(options) {}

SparseAllReduce::~SparseAllReduce() = default;

SparseAllReduce::DeviceBuffers& SparseAllReduce::device_buffers() {
  if (!dev_) dev_ = std::make_unique<DeviceBuffers>();
  return *dev_;
}

namespace {

TensorView i32_view(const int32_t* p, int64_t n, Device d) {
  return TensorView(const_cast<int32_t*>(p), n, DType::kI32, d);
}
TensorView f32_view(const float* p, int64_t n, Device d) {
  return TensorView(const_cast<float*>(p), n, DType::kF32, d);
}

// Block r of counts' concatenation is [offsets[r], offsets[r + 1]).
std::vector<int64_t> offsets_of(const std::vector<int64_t>& counts) {
  std::vector<int64_t> o(counts.size() + 1, 0);
  for (size_t r = 0; r < counts.size(); ++r) o[r + 1] = o[r] + counts[r];
  return o;
}

// Water-filled blocks: the first bad position of each found on the GPU, the first bad block (in
// rank order, as on the host) thrown with the host's message.
void check_blocks(int me, Block what, const int32_t* idx, const std::vector<int64_t>& offsets,
                  const std::vector<int64_t>& lo, const std::vector<int64_t>& hi, Device dev) {
  const std::vector<int64_t> bad = cuda_first_bad_indices_in(dev.index, idx, offsets, lo, hi);
  for (size_t r = 0; r < bad.size(); ++r) {
    const int64_t j = bad[r];
    if (j < 0) continue;
    const int32_t* block = idx + offsets[r];
    check_block(me, static_cast<int>(r), what, j, offsets[r + 1] - offsets[r],
                index_at(block, j, dev), j > 0 ? index_at(block, j - 1, dev) : lo[r] - 1, lo[r],
                hi[r]);
  }
}

// kFixed's padded blocks: the verdicts found on the GPU; the first bad block (in rank order) is
// copied to the host, where the host path's check names what is wrong. Returns each block's
// number of real pairs.
std::vector<int64_t> check_padded_blocks(int me, Block what, const int32_t* idx, const float* val,
                                         const std::vector<int64_t>& offsets,
                                         const std::vector<int64_t>& lo,
                                         const std::vector<int64_t>& hi, Device dev) {
  const std::vector<CudaPaddedBlock> v =
      cuda_check_padded_blocks(dev.index, idx, val, offsets, lo, hi, SparseAllReduce::kPadIndex);
  std::vector<int64_t> real(v.size());
  for (size_t r = 0; r < v.size(); ++r) {
    real[r] = v[r].real;
    if (!v[r].bad) continue;
    const int64_t size = offsets[r + 1] - offsets[r];
    std::vector<int32_t> hidx(static_cast<size_t>(size));
    std::vector<float> hval(static_cast<size_t>(size));
    cuda_copy(hidx.data(), idx + offsets[r], sizeof(int32_t) * hidx.size());
    cuda_copy(hval.data(), val + offsets[r], sizeof(float) * hval.size());
    int64_t host_real = 0;
    check_fixed_block(me, static_cast<int>(r), what, hidx.data(), hval.data(), size, lo[r], hi[r],
                      host_real);
    TERSE_THROW(CudaError, kName, " on rank ", me, ": the GPU check finds block ", r,
                " bad but the host check passes it (a bug in cuda_check_padded_blocks); report it "
                "with this message");
  }
  return real;
}

// Phase 4 on the GPU: out = 0 but the s gathered pairs (the values divided by N in place for
// kAverage, IEEE division as on the host); which of my pairs made the result (sent: null, or 0
// for the pairs the fixed mode dropped before phase 1).
void write_result(int32_t* idx, float* val, int64_t s, int world, SparseReduction reduction,
                  const SparseVector& mine, const int32_t* sent, TensorView out,
                  SparseAllReduceReport& report) {
  const int device = out.device.index;
  if (reduction == SparseReduction::kAverage && world > 1 && s > 0) {
    cuda_divide(f32_view(val, s, out.device), static_cast<float>(world));
  }
  cuda_zero(out.data, sizeof(float) * static_cast<size_t>(out.numel));
  cuda_sparse_set(device, idx, val, s, out.as<float>());
  report.selected = s;
  report.kept.assign(static_cast<size_t>(mine.count), 0);
  cuda_kept_flags(device, mine.indices, mine.count, sent, idx, s, report.kept.data());
  report.dropped = 0;
  for (const uint8_t k : report.kept) report.dropped += k == 0 ? 1 : 0;
}

}  // namespace

SparseAllReduceReport SparseAllReduce::water_fill_device(const SparseVector& mine, int64_t budget,
                                                         TensorView out) {
  Communicator& c = comm();
  const int n = c.size();
  const int me = c.rank();
  const size_t un = static_cast<size_t>(n);
  const Device dev = out.device;
  const int device = dev.index;
  const int64_t numel = out.numel;
  const std::vector<int64_t>& b = boundaries_;
  const int64_t lo = b[static_cast<size_t>(me)], hi = b[static_cast<size_t>(me) + 1];
  DeviceBuffers& d = device_buffers();
  SparseAllReduceReport report = sparse_path_report(numel, n);

  // 1. My pairs split by range: where each boundary falls in my sorted indices.
  const std::vector<int64_t> starts = cuda_lower_bounds(device, mine.indices, mine.count, b);
  std::vector<int64_t> send_counts(un), recv_counts(un, mine.count);
  for (size_t r = 0; r < un; ++r) {
    send_counts[r] = starts[r + 1] - starts[r];
    if (static_cast<int>(r) != me) report.sent_pairs_phase1 += send_counts[r];
  }
  const int32_t* ridx = mine.indices;
  const float* rval = mine.values;
  if (n > 1) {
    host_all_to_all(c, TensorView::of(send_counts.data(), n),
                    TensorView::of(recv_counts.data(), n));
    const int64_t total_in = check_received_counts(recv_counts, lo, hi, me);
    int32_t* ri = cuda_ensure<int32_t>(d.recv_idx, device, total_in);
    float* rv = cuda_ensure<float>(d.recv_val, device, total_in);
    device_all_to_allv(c, i32_view(mine.indices, mine.count, dev), send_counts,
                       i32_view(ri, total_in, dev), recv_counts);
    device_all_to_allv(c, f32_view(mine.values, mine.count, dev), send_counts,
                       f32_view(rv, total_in, dev), recv_counts);
    ridx = ri;
    rval = rv;
  }
  // Every block checked before anything is written.
  const std::vector<int64_t> offsets = offsets_of(recv_counts);
  check_blocks(me, Block::kPairs, ridx, offsets, std::vector<int64_t>(un, lo),
               std::vector<int64_t>(un, hi), dev);

  // 2. Sums over my range, rank 0's block first; the touched indices are my candidates.
  const int64_t range = hi - lo;
  float* sums = cuda_ensure<float>(d.sums, device, range);
  int32_t* touched = cuda_ensure<int32_t>(d.touched, device, range);
  cuda_zero(sums, sizeof(float) * static_cast<size_t>(range));
  cuda_zero(touched, sizeof(int32_t) * static_cast<size_t>(range));
  std::vector<CudaSpan> spans;
  for (size_t r = 0; r < un; ++r) spans.push_back({offsets[r], offsets[r + 1]});
  cuda_range_add_spans(device, ridx, rval, spans, lo, sums, touched);
  int32_t* ci = cuda_ensure<int32_t>(d.cand_idx, device, range);
  float* cv = cuda_ensure<float>(d.cand_val, device, range);
  const int64_t my_cand = cuda_touched_pairs(device, touched, sums, range, lo, ci, cv);
  const std::vector<int64_t> cand_counts = gather_candidate_counts(c, my_cand, b);
  const std::vector<int64_t> sel_counts = quotas(budget, cand_counts);
  const int64_t q = sel_counts[static_cast<size_t>(me)];
  int32_t* si = cuda_ensure<int32_t>(d.sel_idx, device, q);
  float* sv = cuda_ensure<float>(d.sel_val, device, q);
  const int64_t my_sel = cuda_keep_largest(device, ci, cv, my_cand, q, si, sv, nullptr);

  // 3. Every range's selection (q_r <= c_r, so my_sel == q).
  int32_t* gi = si;
  float* gv = sv;
  int64_t total = my_sel;
  if (n > 1) {
    total = offsets_of(sel_counts).back();
    gi = cuda_ensure<int32_t>(d.all_idx, device, total);
    gv = cuda_ensure<float>(d.all_val, device, total);
    device_all_gatherv(c, i32_view(si, my_sel, dev), i32_view(gi, total, dev), sel_counts);
    device_all_gatherv(c, f32_view(sv, my_sel, dev), f32_view(gv, total, dev), sel_counts);
    check_blocks(me, Block::kSelection, gi, offsets_of(sel_counts),
                 std::vector<int64_t>(b.begin(), b.end() - 1),
                 std::vector<int64_t>(b.begin() + 1, b.end()), dev);
  }

  // 4. out, kept, the bytes, the next ranges.
  write_result(gi, gv, total, n, options_.reduction, mine, nullptr, out, report);
  set_water_fill_bytes(report, n, my_sel);
  if (total > 0)
    rebalance(total, cuda_indices_at(device, gi, rebalance_positions(total, n)), numel);
  cuda_sparse_wait(device);
  return report;
}

SparseAllReduceReport SparseAllReduce::fixed_device(const SparseVector& mine, int64_t budget,
                                                    TensorView out) {
  Communicator& c = comm();
  const int n = c.size();
  const int me = c.rank();
  const size_t un = static_cast<size_t>(n);
  const Device dev = out.device;
  const int device = dev.index;
  const int64_t numel = out.numel;
  const std::vector<int64_t>& b = boundaries_;
  const int64_t lo = b[static_cast<size_t>(me)], hi = b[static_cast<size_t>(me) + 1];
  const std::vector<int64_t> quota = fixed_quotas(budget, n);
  const int64_t q = quota[static_cast<size_t>(me)];
  DeviceBuffers& d = device_buffers();
  SparseAllReduceReport report = sparse_path_report(numel, n);

  // 1. Per range, my c_r pairs of largest |value| (all of them when I hold fewer), padded.
  int32_t* send_i = cuda_ensure<int32_t>(d.send_idx, device, budget);
  float* send_v = cuda_ensure<float>(d.send_val, device, budget);
  cuda_fill_i32(device, send_i, budget, kPadIndex);
  cuda_zero(send_v, sizeof(float) * static_cast<size_t>(budget));
  int32_t* sent = cuda_ensure<int32_t>(d.sent, device, mine.count);
  const std::vector<int64_t> starts = cuda_lower_bounds(device, mine.indices, mine.count, b);
  int64_t slot = 0;
  for (size_t r = 0; r < un; ++r) {
    const int64_t from = starts[r], to = starts[r + 1];
    cuda_keep_largest(device, mine.indices + from, mine.values + from, to - from, quota[r],
                      send_i + slot, send_v + slot, sent + from);
    slot += quota[r];
  }
  const int32_t* ri = send_i;  // one rank: budget == q
  const float* rv = send_v;
  if (n > 1) {
    const std::vector<int64_t> recv_counts(un, q);
    int32_t* di = cuda_ensure<int32_t>(d.recv_idx, device, n * q);
    float* dv = cuda_ensure<float>(d.recv_val, device, n * q);
    device_all_to_allv(c, i32_view(send_i, budget, dev), quota, i32_view(di, n * q, dev),
                       recv_counts);
    device_all_to_allv(c, f32_view(send_v, budget, dev), quota, f32_view(dv, n * q, dev),
                       recv_counts);
    ri = di;
    rv = dv;
  }
  // Every block checked before anything is written.
  std::vector<int64_t> offsets(un + 1);
  for (size_t r = 0; r <= un; ++r) offsets[r] = static_cast<int64_t>(r) * q;
  const std::vector<int64_t> real =
      check_padded_blocks(me, Block::kPairs, ri, rv, offsets, std::vector<int64_t>(un, lo),
                          std::vector<int64_t>(un, hi), dev);

  // 2. Sum the real pairs over my range in rank order; keep my c_me of the largest |sum|, padded.
  const int64_t range = hi - lo;
  float* sums = cuda_ensure<float>(d.sums, device, range);
  int32_t* touched = cuda_ensure<int32_t>(d.touched, device, range);
  cuda_zero(sums, sizeof(float) * static_cast<size_t>(range));
  cuda_zero(touched, sizeof(int32_t) * static_cast<size_t>(range));
  std::vector<CudaSpan> spans;
  for (size_t r = 0; r < un; ++r) spans.push_back({offsets[r], offsets[r] + real[r]});
  cuda_range_add_spans(device, ri, rv, spans, lo, sums, touched);
  int32_t* ci = cuda_ensure<int32_t>(d.cand_idx, device, range);
  float* cv = cuda_ensure<float>(d.cand_val, device, range);
  const int64_t my_cand = cuda_touched_pairs(device, touched, sums, range, lo, ci, cv);
  int32_t* si = cuda_ensure<int32_t>(d.sel_idx, device, q);
  float* sv = cuda_ensure<float>(d.sel_val, device, q);
  cuda_fill_i32(device, si, q, kPadIndex);
  cuda_zero(sv, sizeof(float) * static_cast<size_t>(q));
  cuda_keep_largest(device, ci, cv, my_cand, q, si, sv, nullptr);

  // 3. Every range's block (sizes c_r, known everywhere), checked against its sender's range.
  const int32_t* ai = si;  // one rank: budget == q
  const float* av = sv;
  if (n > 1) {
    int32_t* gi = cuda_ensure<int32_t>(d.all_idx, device, budget);
    float* gv = cuda_ensure<float>(d.all_val, device, budget);
    device_all_gatherv(c, i32_view(si, q, dev), i32_view(gi, budget, dev), quota);
    device_all_gatherv(c, f32_view(sv, q, dev), f32_view(gv, budget, dev), quota);
    ai = gi;
    av = gv;
  }
  const std::vector<int64_t> sel_real =
      check_padded_blocks(me, Block::kSelection, ai, av, offsets_of(quota),
                          std::vector<int64_t>(b.begin(), b.end() - 1),
                          std::vector<int64_t>(b.begin() + 1, b.end()), dev);
  const int64_t s = offsets_of(sel_real).back();
  int32_t* xi = cuda_ensure<int32_t>(d.real_idx, device, s);
  float* xv = cuda_ensure<float>(d.real_val, device, s);
  const int64_t kept_real = cuda_drop_padding(device, ai, av, budget, kPadIndex, xi, xv);
  TERSE_CHECK(kept_real == s, CudaError, kName, " on rank ", me, ": ", kept_real,
              " real pairs left after dropping the padding of the gathered blocks, but their "
              "check counted ",
              s, " (a bug in cuda_drop_padding); report it with this message");

  // 4. out, kept (sent in phase 1 and selected), the bytes, the next ranges.
  write_result(xi, xv, s, n, options_.reduction, mine, sent, out, report);
  set_fixed_bytes(report, n, budget, q);
  if (s > 0) rebalance(s, cuda_indices_at(device, xi, rebalance_positions(s, n)), numel);
  cuda_sparse_wait(device);
  return report;
}

}  // namespace terse

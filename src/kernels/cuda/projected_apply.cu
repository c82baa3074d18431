// cuda_projected_apply (terse/kernels/cuda_projected.h): AdamP / SGDP on a GPU with the CPU
// executor's bits (cpu_projected_impl.h). Three kernels, each over many tensors:
// - elementwise_kernel<kFlat>: tensors that are never projected, in one pass;
// - sums_kernel: the first pass of the others, one thread per (piece, lane) of the CPU's row
//   sums (projection_choice.h), adding its elements in order, then the 8 lanes in the CPU's tree;
// - elementwise_kernel<kSecond>: their second pass, after the host picked the views.
// Built with -fmad=false -prec-div=true -prec-sqrt=true (src/kernels/CMakeLists.txt), so the
// Rules' f32 arithmetic rounds as the CPU loop's does.
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "codec_util.cuh"
#include "launch_table.cuh"
#include "pack4.cuh"
#include "terse/core/check.h"
#include "terse/core/dispatch.h"
#include "terse/core/dtype.h"
#include "terse/kernels/cpu_chunks.h"
#include "terse/kernels/cuda_projected.h"
#include "terse/kernels/projection_choice.h"

namespace terse {

using cuda_codec::cuda_check;
using cuda_launch::ChunkRef;
using cuda_launch::Pack4;
namespace {

constexpr int kMaxDevices = 64;
// Element-wise kernels: one block of kThreads per chunk of kChunk elements of one tensor.
constexpr int kThreads = 512;
constexpr int64_t kChunk = 65536;
// Sums kernel: a piece's kLanes lanes are consecutive threads of one warp (for the shuffles);
// each thread loads kUnroll elements of its lane ahead of adding them.
constexpr int kLanes = kProjectionLanes;
constexpr int kSumThreads = 64;
constexpr int kPiecesPerBlock = kSumThreads / kLanes;
constexpr int kUnroll = 8;
static_assert(kSumThreads % 32 == 0 && 32 % kLanes == 0,
              "the lanes of one piece must lie in one warp, and blocks must be whole warps");

// A tensor as the kernels see it (pointers into device memory).
template <typename Rule>
struct Desc {
  Rule rule;
  void* p;
  const void* g;
  float* s0;
  float* s1;            // the second state, null when the Rule has one
  int64_t n;            // elements
  int64_t len;          // row length of a projected tensor (0 for a flat one)
  int64_t pieces;       // sums kernel: pieces per row
  int64_t first_piece;  // sums kernel: index of the tensor's first piece in the sums
  const float* coef;    // second pass: per row where projected, else null
  float decay;          // the decay this pass applies
  int vec;              // p, g and the states are aligned for 4-element vector access
};

enum Pass : int { kFlat = 0, kSecond = 1 };

// One element, as cpu_projected_impl.h's single_pass (kFlat) and second_pass (kSecond) do it.
template <int kPass, typename Rule>
__device__ __forceinline__ void step_element(const Rule& r, float decay, bool project, float coef,
                                             float& pv, float gv, float& x0, float& x1) {
  float u;
  if constexpr (kPass == kFlat) {
    u = r.update(gv, x0, x1);
  } else {
    u = r.perturb(gv, x0, x1);
    if (project) u = u - pv * coef;
  }
  pv = pv * decay;
  pv = pv + r.proj.neg_step * u;
}

template <int kPass, typename Rule, typename T>
__global__ void __launch_bounds__(kThreads)
    elementwise_kernel(const Desc<Rule>* __restrict__ descs, const ChunkRef* __restrict__ chunks) {
  constexpr bool kTwo = Rule::kNumStates > 1;
  constexpr bool kWrite = kPass == kFlat;  // the second pass reads the advanced states only
  const ChunkRef c = chunks[blockIdx.x];
  const Desc<Rule>& d = descs[c.task];
  const Rule r = d.rule;
  T* __restrict__ p = static_cast<T*>(d.p);
  const T* __restrict__ g = static_cast<const T*>(d.g);
  float* __restrict__ s0 = d.s0;
  float* __restrict__ s1 = d.s1;
  const float decay = d.decay;
  const float* __restrict__ coef = d.coef;
  const bool project = kPass == kSecond && coef != nullptr;
  const int64_t len = d.len;
  const int64_t begin = int64_t{c.chunk} * kChunk;
  const int64_t end = d.n < begin + kChunk ? d.n : begin + kChunk;
  int64_t first_scalar = begin;
  if (d.vec) {
    // Chunks start at multiples of 4, so groups of 4 never straddle two blocks.
    const int64_t groups = (end - begin) / 4;
    for (int64_t q = threadIdx.x; q < groups; q += kThreads) {
      const int64_t i = begin + 4 * q;
      Pack4<T> pp = *reinterpret_cast<const Pack4<T>*>(p + i);
      const Pack4<T> gp = *reinterpret_cast<const Pack4<T>*>(g + i);
      Pack4<float> a0 = *reinterpret_cast<const Pack4<float>*>(s0 + i);
      Pack4<float> a1 = {{0.0f, 0.0f, 0.0f, 0.0f}};
      if constexpr (kTwo) a1 = *reinterpret_cast<const Pack4<float>*>(s1 + i);
      float cf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      if (project) {
        // The 4 elements may lie in up to 4 rows (rows shorter than 4).
        int64_t row = i / len;
        int64_t next = (row + 1) * len;
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          while (i + e >= next) {
            ++row;
            next += len;
          }
          cf[e] = coef[row];
        }
      }
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float pv = load_as_float(pp.v, e);
        step_element<kPass>(r, decay, project, cf[e], pv, load_as_float(gp.v, e), a0.v[e], a1.v[e]);
        store_from_float(pp.v, e, pv);
      }
      *reinterpret_cast<Pack4<T>*>(p + i) = pp;
      if constexpr (kWrite) {
        *reinterpret_cast<Pack4<float>*>(s0 + i) = a0;
        if constexpr (kTwo) *reinterpret_cast<Pack4<float>*>(s1 + i) = a1;
      }
    }
    first_scalar = begin + 4 * groups;
  }
  // Misaligned tensors and the tail: one element at a time.
  for (int64_t i = first_scalar + threadIdx.x; i < end; i += kThreads) {
    float x0 = s0[i];
    float x1 = 0.0f;
    if constexpr (kTwo) x1 = s1[i];
    const float cf = project ? coef[i / len] : 0.0f;
    float pv = load_as_float(p, i);
    step_element<kPass>(r, decay, project, cf, pv, load_as_float(g, i), x0, x1);
    store_from_float(p, i, pv);
    if constexpr (kWrite) {
      s0[i] = x0;
      if constexpr (kTwo) s1[i] = x1;
    }
  }
}

// The first pass of projected tensors. block_start[t] is the first block of tensor t (the
// array has num_tasks + 1 entries, strictly increasing: every tensor has a piece). Thread
// (piece, lane) advances the states of elements begin + lane, begin + lane + 8, ... of its
// piece in order and sums their products; the lanes are then added in the CPU's tree and lane
// 0 writes the piece's <g,theta>, |g|^2, |theta|^2, <theta,perturb> to out[4 * piece ...].
template <typename Rule, typename T>
__global__ void __launch_bounds__(kSumThreads)
    sums_kernel(const Desc<Rule>* __restrict__ descs, const int64_t* __restrict__ block_start,
                int num_tasks, double* __restrict__ out) {
  constexpr bool kTwo = Rule::kNumStates > 1;
  const int64_t b = blockIdx.x;
  int lo = 0, hi = num_tasks - 1;  // the last tensor whose first block is <= b
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (block_start[mid] <= b) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  const Desc<Rule>& d = descs[lo];
  const Rule r = d.rule;
  T* __restrict__ p = static_cast<T*>(d.p);
  const T* __restrict__ g = static_cast<const T*>(d.g);
  float* __restrict__ s0 = d.s0;
  float* __restrict__ s1 = d.s1;
  const int lane = static_cast<int>(threadIdx.x) % kLanes;
  const int64_t piece = (b - block_start[lo]) * kPiecesPerBlock + threadIdx.x / kLanes;
  const bool valid = piece < (d.n / d.len) * d.pieces;
  double sgp = 0.0, sgg = 0.0, spp = 0.0, spd = 0.0;
  if (valid) {
    const int64_t row = piece / d.pieces;
    const int64_t begin = row * d.len + (piece - row * d.pieces) * kCpuChunkElements;
    const int64_t row_end = (row + 1) * d.len;
    const int64_t end = row_end < begin + kCpuChunkElements ? row_end : begin + kCpuChunkElements;
    for (int64_t i0 = begin + lane; i0 < end; i0 += int64_t{kLanes} * kUnroll) {
      float pv[kUnroll], gv[kUnroll], x0[kUnroll], x1[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t i = i0 + int64_t{kLanes} * u;
        pv[u] = gv[u] = x0[u] = x1[u] = 0.0f;
        if (i < end) {
          pv[u] = load_as_float(p, i);
          gv[u] = load_as_float(g, i);
          x0[u] = s0[i];
          if constexpr (kTwo) x1[u] = s1[i];
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t i = i0 + int64_t{kLanes} * u;
        if (i < end) {
          const float dv = r.update(gv[u], x0[u], x1[u]);
          s0[i] = x0[u];
          if constexpr (kTwo) s1[i] = x1[u];
          // f32 x f32 products are exact in double; the sums round as the CPU's lanes do.
          const double gd = gv[u], pd = pv[u], dd = dv;
          sgp += gd * pd;
          sgg += gd * gd;
          spp += pd * pd;
          spd += pd * dd;
        }
      }
    }
  }
  // ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)): after the step with offset o, lane l
  // holds its group's sum (addition commutes exactly, so both partners hold the same value).
  // Every thread of the warp takes part, valid or not.
#pragma unroll
  for (int off = 1; off < kLanes; off *= 2) {
    sgp += __shfl_xor_sync(0xffffffffu, sgp, off);
    sgg += __shfl_xor_sync(0xffffffffu, sgg, off);
    spp += __shfl_xor_sync(0xffffffffu, spp, off);
    spd += __shfl_xor_sync(0xffffffffu, spd, off);
  }
  if (valid && lane == 0) {
    double* o = out + 4 * (d.first_piece + piece);
    o[0] = sgp;
    o[1] = sgg;
    o[2] = spp;
    o[3] = spd;
  }
}

template <typename Rule>
int validate(const std::vector<CudaProjectedTask<Rule>>& tasks) {
  int device = -1;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const CudaProjectedTask<Rule>& t = tasks[i];
    TERSE_CHECK(t.param.device.is_cuda() && t.grad.device == t.param.device, InvalidArgument,
                "cuda_projected_apply: tensor ", i, " is not on one CUDA device (param ",
                t.param.str(), ", grad ", t.grad.str(),
                "); pass CUDA tensors (or use cpu_projected_apply)");
    TERSE_CHECK(t.param.device.index >= 0 && t.param.device.index < kMaxDevices, InvalidArgument,
                "cuda_projected_apply: device index ", t.param.device.index, " out of range");
    TERSE_CHECK(device < 0 || t.param.device.index == device, InvalidArgument,
                "cuda_projected_apply: tensor ", i, " is on cuda:", t.param.device.index,
                " but tensor 0 on cuda:", device, "; one call takes the tensors of one device");
    device = t.param.device.index;
    check_projected_task(t, i, "cuda_projected_apply");
    TERSE_CHECK(t.param.numel / kChunk < (int64_t{1} << 31), InvalidArgument,
                "cuda_projected_apply: tensor ", i, " has ", t.param.numel,
                " elements, more than this executor's 2^31 chunks");
  }
  TERSE_CHECK(tasks.size() < (size_t{1} << 31), InvalidArgument,
              "cuda_projected_apply: ", tasks.size(), " tensors in one call");
  return device;
}

using cuda_launch::HostTable;
using cuda_launch::kNumParamTypes;
using cuda_launch::kParamTypes;

template <typename Rule>
Desc<Rule> desc_of(const CudaProjectedTask<Rule>& t, DType dtype) {
  Desc<Rule> d{};
  d.rule = t.rule;
  d.p = t.param.data;
  d.g = t.grad.data;
  d.s0 = t.states[0];
  d.s1 = Rule::kNumStates > 1 ? t.states[Rule::kNumStates - 1] : nullptr;
  d.n = t.param.numel;
  d.len = t.rows > 0 ? t.param.numel / t.rows : 0;
  using cuda_launch::is_aligned;
  const size_t width = 4 * dtype_size(dtype);
  d.vec = is_aligned(d.p, width) && is_aligned(d.g, width) && is_aligned(d.s0, 16) &&
          (d.s1 == nullptr || is_aligned(d.s1, 16));
  return d;
}

unsigned grid_of(size_t blocks, const char* what) {
  TERSE_CHECK(blocks < (size_t{1} << 31), InvalidArgument, "cuda_projected_apply: ", blocks, " ",
              what, " blocks in one launch, more than 2^31 - 1; step fewer tensors per call");
  return static_cast<unsigned>(blocks);
}

template <int kPass, typename Rule>
void launch_elementwise(DType dtype, unsigned blocks, const Desc<Rule>* d, const ChunkRef* c) {
  dispatch_floating(dtype, [&](auto tag) {
    elementwise_kernel<kPass, Rule, decltype(tag)><<<blocks, kThreads>>>(d, c);
  });
  cuda_check(cudaGetLastError(), "the projected step's element-wise launch");
}

template <typename Rule>
void launch_sums(DType dtype, unsigned blocks, const Desc<Rule>* d, const int64_t* starts,
                 int num_tasks, double* out) {
  dispatch_floating(dtype, [&](auto tag) {
    sums_kernel<Rule, decltype(tag)><<<blocks, kSumThreads>>>(d, starts, num_tasks, out);
  });
  cuda_check(cudaGetLastError(), "the projected step's row-sum launch");
}

// Everything after validation, on the tensors' device (current).
template <typename Rule>
std::vector<ProjectionView> run(const std::vector<CudaProjectedTask<Rule>>& tasks,
                                std::vector<std::vector<RowSums>>* row_sums) {
  std::vector<ProjectionView> views(tasks.size(), ProjectionView::kNone);
  // Pass 1, per dtype: flat tensors (descriptors, chunks), projected ones (descriptors, the
  // first block of each in the sums kernel, the task each came from).
  std::vector<Desc<Rule>> flat[kNumParamTypes], proj[kNumParamTypes];
  std::vector<ChunkRef> flat_chunks[kNumParamTypes];
  std::vector<int64_t> starts[kNumParamTypes];
  std::vector<size_t> proj_task[kNumParamTypes];
  int64_t total_pieces = 0;
  for (int k = 0; k < kNumParamTypes; ++k) {
    for (size_t i = 0; i < tasks.size(); ++i) {
      const CudaProjectedTask<Rule>& t = tasks[i];
      if (t.param.dtype != kParamTypes[k] || t.param.numel == 0) continue;
      Desc<Rule> d = desc_of(t, kParamTypes[k]);
      if (t.rows == 0) {
        d.decay = t.rule.proj.decay;
        cuda_launch::add_chunks(flat_chunks[k], flat[k].size(), d.n, kChunk);
        flat[k].push_back(d);
        continue;
      }
      d.pieces = projection_pieces_per_row(d.len);
      d.first_piece = total_pieces;
      const int64_t pieces = t.rows * d.pieces;
      total_pieces += pieces;
      if (starts[k].empty()) starts[k].push_back(0);
      starts[k].push_back(starts[k].back() + (pieces + kPiecesPerBlock - 1) / kPiecesPerBlock);
      proj[k].push_back(d);
      proj_task[k].push_back(i);
    }
  }
  unsigned flat_grid[kNumParamTypes], sums_grid[kNumParamTypes];
  for (int k = 0; k < kNumParamTypes; ++k) {
    flat_grid[k] = grid_of(flat_chunks[k].size(), "element-wise");
    sums_grid[k] =
        grid_of(starts[k].empty() ? 0 : static_cast<size_t>(starts[k].back()), "row-sum");
  }
  HostTable table;
  size_t flat_at[kNumParamTypes], chunk_at[kNumParamTypes], proj_at[kNumParamTypes],
      start_at[kNumParamTypes];
  for (int k = 0; k < kNumParamTypes; ++k) {
    flat_at[k] = table.append(flat[k]);
    chunk_at[k] = table.append(flat_chunks[k]);
    proj_at[k] = table.append(proj[k]);
    start_at[k] = table.append(starts[k]);
  }
  const unsigned char* dev = cuda_launch::upload(table, cuda_codec::Scratch::kLaunchTable,
                                                 "cudaMemcpyAsync of the projected step's table");
  double* dev_sums = nullptr;
  if (total_pieces > 0) {
    dev_sums = static_cast<double*>(cuda_codec::scratch(
        cuda_codec::Scratch::kRowSums, static_cast<size_t>(total_pieces) * 4 * sizeof(double)));
  }
  for (int k = 0; k < kNumParamTypes; ++k) {
    if (!flat_chunks[k].empty()) {
      launch_elementwise<kFlat>(kParamTypes[k], flat_grid[k],
                                reinterpret_cast<const Desc<Rule>*>(dev + flat_at[k]),
                                reinterpret_cast<const ChunkRef*>(dev + chunk_at[k]));
    }
    if (!proj[k].empty()) {
      launch_sums(kParamTypes[k], sums_grid[k],
                  reinterpret_cast<const Desc<Rule>*>(dev + proj_at[k]),
                  reinterpret_cast<const int64_t*>(dev + start_at[k]),
                  static_cast<int>(proj[k].size()), dev_sums);
    }
  }
  if (total_pieces == 0) return views;

  // The views, on the host: waits for the first pass.
  std::vector<double> piece_sums(static_cast<size_t>(total_pieces) * 4);
  cuda_check(cudaMemcpy(piece_sums.data(), dev_sums, piece_sums.size() * sizeof(double),
                        cudaMemcpyDeviceToHost),
             "copy of the projected step's row sums");
  std::vector<float> coefs;  // of every projected tensor, one after the other
  std::vector<size_t> coef_at[kNumParamTypes];
  std::vector<RowSums> sums;
  std::vector<float> coef;
  for (int k = 0; k < kNumParamTypes; ++k) {
    for (size_t m = 0; m < proj[k].size(); ++m) {
      const Desc<Rule>& d = proj[k][m];
      const size_t i = proj_task[k][m];
      const CudaProjectedTask<Rule>& t = tasks[i];
      // A row is the sum of its pieces in order, from +0, as on the CPU.
      sums.assign(static_cast<size_t>(t.rows), RowSums{});
      for (int64_t r = 0; r < t.rows; ++r) {
        for (int64_t j = 0; j < d.pieces; ++j) {
          const double* s = piece_sums.data() + 4 * (d.first_piece + r * d.pieces + j);
          sums[static_cast<size_t>(r)] += RowSums{s[0], s[1], s[2], s[3]};
        }
      }
      views[i] = choose_view(sums, t.param.numel, t.rule.proj.delta, t.rule.proj.eps, coef);
      if (row_sums != nullptr) (*row_sums)[i] = sums;
      coef_at[k].push_back(coefs.size());
      if (views[i] != ProjectionView::kNone) coefs.insert(coefs.end(), coef.begin(), coef.end());
    }
  }

  // Pass 2: the coefficients, then per dtype the descriptors and chunks.
  HostTable table2;
  const size_t coefs_at = table2.append(coefs);
  std::vector<Desc<Rule>> second[kNumParamTypes];
  std::vector<ChunkRef> second_chunks[kNumParamTypes];
  size_t second_at[kNumParamTypes], second_chunk_at[kNumParamTypes];
  for (int k = 0; k < kNumParamTypes; ++k) {
    for (size_t m = 0; m < proj[k].size(); ++m) {
      cuda_launch::add_chunks(second_chunks[k], m, proj[k][m].n, kChunk);
    }
  }
  // The table's size does not depend on the coef pointers, so the buffer comes first.
  size_t bytes = table2.size();
  for (int k = 0; k < kNumParamTypes; ++k) {
    bytes = HostTable::size_with<Desc<Rule>>(bytes, proj[k].size());
    bytes = HostTable::size_with<ChunkRef>(bytes, second_chunks[k].size());
  }
  auto* dev2 =
      static_cast<unsigned char*>(cuda_codec::scratch(cuda_codec::Scratch::kLaunchTable2, bytes));
  const auto* dev_coefs = reinterpret_cast<const float*>(dev2 + coefs_at);
  for (int k = 0; k < kNumParamTypes; ++k) {
    for (size_t m = 0; m < proj[k].size(); ++m) {
      Desc<Rule> d = proj[k][m];
      const CudaProjectedTask<Rule>& t = tasks[proj_task[k][m]];
      const bool projected = views[proj_task[k][m]] != ProjectionView::kNone;
      d.coef = projected ? dev_coefs + coef_at[k][m] : nullptr;
      d.decay = projected ? t.rule.proj.decay_projected : t.rule.proj.decay;
      second[k].push_back(d);
    }
    second_at[k] = table2.append(second[k]);
    second_chunk_at[k] = table2.append(second_chunks[k]);
  }
  TERSE_CHECK(table2.size() == bytes, Error, "cuda_projected_apply: the second pass's table is ",
              table2.size(), " bytes, not the ", bytes,
              " planned; this is a bug in terse, please report it");
  cuda_launch::upload_to(dev2, table2, "cudaMemcpyAsync of the projected step's second table");
  for (int k = 0; k < kNumParamTypes; ++k) {
    if (second_chunks[k].empty()) continue;
    launch_elementwise<kSecond>(kParamTypes[k], grid_of(second_chunks[k].size(), "element-wise"),
                                reinterpret_cast<const Desc<Rule>*>(dev2 + second_at[k]),
                                reinterpret_cast<const ChunkRef*>(dev2 + second_chunk_at[k]));
  }
  return views;
}

}  // namespace

template <typename Rule>
std::vector<ProjectionView> cuda_projected_apply(const std::vector<CudaProjectedTask<Rule>>& tasks,
                                                 std::vector<std::vector<RowSums>>* row_sums) {
  const int device = validate(tasks);
  if (row_sums != nullptr) row_sums->assign(tasks.size(), {});
  bool any = false;
  for (const auto& t : tasks) any = any || t.param.numel > 0;
  if (!any) return std::vector<ProjectionView>(tasks.size(), ProjectionView::kNone);
  std::vector<ProjectionView> views;
  cuda_launch::with_device(device, [&] { views = run(tasks, row_sums); });
  return views;
}

#define TERSE_CUDA_PROJECTED_INSTANTIATE(R)                  \
  template std::vector<ProjectionView> cuda_projected_apply( \
      const std::vector<CudaProjectedTask<R>>&, std::vector<std::vector<RowSums>>*);
TERSE_CUDA_PROJECTED_RULES(TERSE_CUDA_PROJECTED_INSTANTIATE)
#undef TERSE_CUDA_PROJECTED_INSTANTIATE

}  // namespace terse

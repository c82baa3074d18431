// cuda_projected_apply (terse/kernels/cuda_projected.h): AdamP / SGDP on a GPU with the CPU
// executor's bits (cpu_projected_impl.h), with no host round trip. Four kernels, each over many
// tensors, enqueued one after the other:
// - elementwise_kernel<kFlat>: tensors that are never projected, in one pass;
// - sums_kernel: the first pass of the others, one thread per (piece, lane) of the CPU's row
//   sums (projection_choice.h), adding its elements in order, then the 8 lanes in the CPU's tree;
// - choice_kernel: one block per group of kProjectionFanout rows: each thread adds its row's
//   pieces, tests the row and computes its channel coefficient, thread 0 adds the group's rows;
//   the tensor's last block adds the groups in the rounds of projection_layer_sum and picks the
//   view (projection_view), all with projection_choice.h's functions, so the CPU's operations;
// - elementwise_kernel<kSecond>: their second pass, reading the view the GPU picked.
// Built with -fmad=false -prec-div=true -prec-sqrt=true (src/kernels/CMakeLists.txt), so the
// Rules' f32 arithmetic rounds as the CPU loop's does (double division and square root are
// IEEE on the GPU in any case).
#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include "codec_util.cuh"
#include "launch_table.cuh"
#include "pack4.cuh"
#include "terse/core/check.h"
#include "terse/core/dtype.h"
#include "terse/kernels/cpu_chunks.h"
#include "terse/kernels/cuda_projected.h"
#include "terse/kernels/projection_choice.h"

namespace terse {

using cuda_codec::cuda_check;
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

// The view the GPU picked for a projected tensor, the layer's sums and its coefficient.
struct Choice {
  RowSums layer;  // projection_layer_sum of the rows (reported to the tests)
  int view;       // a ProjectionView
  float layer_coef;
};

// A tensor as the kernels see it (pointers into device memory).
template <typename Rule>
struct Desc {
  Rule rule;
  void* p;
  const void* g;
  float* s0;
  float* s1;             // the second state, null when the Rule has one
  int64_t n;             // elements
  int64_t len;           // row length of a projected tensor (0 for a flat one)
  int64_t pieces;        // sums kernel: pieces per row
  int64_t first_piece;   // sums kernel: index of the tensor's first piece in the sums
  const float* coef;     // second pass: the channel view's coefficient of each row
  const Choice* choice;  // second pass: the tensor's view
  float decay;           // flat pass: the decay
  int vec;               // p, g and the states are aligned for 4-element vector access
};

using cuda_launch::ChunkRef;  // block b of an element-wise kernel: chunk `chunk` of tensor `task`
using cuda_launch::Pack4;

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
  // The second pass: projected (then coef per row, or layer_coef for all) or not, as picked.
  float decay = d.decay;
  bool project = false;
  const float* __restrict__ coef = nullptr;
  float layer_coef = 0.0f;
  if constexpr (kPass == kSecond) {
    const int view = d.choice->view;
    project = view != static_cast<int>(ProjectionView::kNone);
    decay = project ? r.proj.decay_projected : r.proj.decay;
    if (view == static_cast<int>(ProjectionView::kChannel)) coef = d.coef;
    layer_coef = d.choice->layer_coef;
  }
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
      float cf[4] = {layer_coef, layer_coef, layer_coef, layer_coef};
      if (coef != nullptr) {
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
    const float cf = coef != nullptr ? coef[i / len] : layer_coef;
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

// A projected tensor as choice_kernel sees it: its rows' pieces in the piece sums, its rows in
// the per-row arrays, its groups of kGroup rows (one block each) and the scratch of its rounds.
struct ChoiceDesc {
  int64_t numel, rows, pieces, first_piece, first_row, first_group, groups, scratch;
  double delta, eps;
};

constexpr int kGroup = kProjectionFanout;  // choice_kernel: one thread per row of a group

// projection_sum_in_order's at(i) over sums in shared memory (4 arrays of kGroup doubles) and
// over sums that other blocks wrote (read through L2, the last-block pattern's rule).
struct SharedSums {
  const double* s;
  __device__ RowSums operator()(int64_t i) const {
    return RowSums{s[i], s[kGroup + i], s[2 * kGroup + i], s[3 * kGroup + i]};
  }
};
struct GlobalSums {
  const RowSums* x;
  __device__ RowSums operator()(int64_t i) const {
    const double* v = &x[i].gp;
    return RowSums{__ldcg(v), __ldcg(v + 1), __ldcg(v + 2), __ldcg(v + 3)};
  }
};
static_assert(sizeof(RowSums) == 4 * sizeof(double), "RowSums must be 4 packed doubles");

// The view of every projected tensor, as choose_view (projection_choice.h) picks it on the CPU.
// Block b is group b - first_group of the last tensor whose first_group is <= b. Its thread j
// adds the pieces of row 256 (b - first_group) + j in order from +0 (the CPU's row sum), writes
// the row's channel coefficient (and its sums when rows_out is given) and tests it; thread 0
// then adds the group's rows in order from +0 (projection_layer_sum's first round). The last of
// the tensor's blocks to finish (a counter per tensor, zeroed before the launch) runs the later
// rounds over the groups' sums, ping-ponging between them and the scratch, and writes the view.
__global__ void __launch_bounds__(kGroup)
    choice_kernel(const ChoiceDesc* __restrict__ descs, int num_tasks,
                  const double* __restrict__ piece_sums, RowSums* __restrict__ rows_out,
                  float* __restrict__ coefs, RowSums* partials, int* group_pass, RowSums* scratch,
                  unsigned* counters, Choice* __restrict__ choices) {
  __shared__ double sums[4 * kGroup];
  __shared__ int last;
  const int64_t b = blockIdx.x;
  int lo = 0, hi = num_tasks - 1;  // every tensor has a group, so first_group increases
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (descs[mid].first_group <= b) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  const ChoiceDesc d = descs[lo];
  const int tid = static_cast<int>(threadIdx.x);
  const int64_t group = b - d.first_group;
  const int64_t row = group * kGroup + tid;
  bool pass = true;
  if (row < d.rows) {
    const double* ps = piece_sums + 4 * (d.first_piece + row * d.pieces);
    RowSums s;
    for (int64_t j = 0; j < d.pieces; ++j) {
      s += RowSums{ps[4 * j], ps[4 * j + 1], ps[4 * j + 2], ps[4 * j + 3]};
    }
    pass = projection_row_passes(s, d.numel, d.rows, d.delta, d.eps);
    coefs[d.first_row + row] = projection_coefficient(s, d.eps);
    if (rows_out != nullptr) rows_out[d.first_row + row] = s;
    sums[tid] = s.gp;
    sums[kGroup + tid] = s.gg;
    sums[2 * kGroup + tid] = s.pp;
    sums[3 * kGroup + tid] = s.pd;
  }
  const int every = __syncthreads_and(pass ? 1 : 0);  // also makes `sums` visible
  if (tid == 0) {
    const int64_t m = d.rows - group * kGroup < kGroup ? d.rows - group * kGroup : kGroup;
    partials[d.first_group + group] = projection_sum_in_order(SharedSums{sums}, m);
    group_pass[d.first_group + group] = every;
    int is_last = 1;
    if (d.groups > 1) {
      // Publish this group's sums before counting it; the last block fences before reading.
      __threadfence();
      is_last = atomicAdd(counters + lo, 1u) + 1u == static_cast<unsigned>(d.groups);
      if (is_last) __threadfence();
    }
    last = is_last;
  }
  __syncthreads();
  if (!last) return;

  int all = 1;
  for (int64_t i = tid; i < d.groups; i += kGroup) all &= __ldcg(group_pass + d.first_group + i);
  all = __syncthreads_and(all);
  // The later rounds of projection_layer_sum: m sums at src, ceil(m / kGroup) nodes to dst.
  RowSums* src = partials + d.first_group;
  RowSums* dst = scratch + d.scratch;
  for (int64_t m = d.groups; m > 1; m = (m + kGroup - 1) / kGroup) {
    const int64_t nodes = (m + kGroup - 1) / kGroup;
    for (int64_t j = tid; j < nodes; j += kGroup) {
      const int64_t n = m - j * kGroup < kGroup ? m - j * kGroup : kGroup;
      dst[j] = projection_sum_in_order(GlobalSums{src + j * kGroup}, n);
    }
    __syncthreads();
    RowSums* t = src;
    src = dst;
    dst = t;
  }
  if (tid == 0) {
    const RowSums layer = GlobalSums{src}(0);
    const ProjectionView v = projection_view(all != 0, layer, d.numel, d.rows, d.delta, d.eps);
    Choice& c = choices[lo];
    c.layer = layer;
    c.view = static_cast<int>(v);
    c.layer_coef = v == ProjectionView::kLayer ? projection_coefficient(layer, d.eps) : 0.0f;
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

constexpr const DType* kTypes = cuda_launch::kParamTypes;

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
  const auto aligned = cuda_launch::is_aligned;
  const size_t width = 4 * dtype_size(dtype);
  d.vec = aligned(d.p, width) && aligned(d.g, width) && aligned(d.s0, 16) &&
          (d.s1 == nullptr || aligned(d.s1, 16));
  return d;
}

unsigned grid_of(size_t blocks, const char* what) {
  TERSE_CHECK(blocks < (size_t{1} << 31), InvalidArgument, "cuda_projected_apply: ", blocks, " ",
              what, " blocks in one launch, more than 2^31 - 1; step fewer tensors per call");
  return static_cast<unsigned>(blocks);
}

template <int kPass, typename Rule>
void launch_elementwise(DType dtype, unsigned blocks, const Desc<Rule>* d, const ChunkRef* c) {
  switch (dtype) {
    case DType::kF32:
      elementwise_kernel<kPass, Rule, float><<<blocks, kThreads>>>(d, c);
      break;
    case DType::kBF16:
      elementwise_kernel<kPass, Rule, BFloat16><<<blocks, kThreads>>>(d, c);
      break;
    default:
      elementwise_kernel<kPass, Rule, Half><<<blocks, kThreads>>>(d, c);
      break;
  }
  cuda_check(cudaGetLastError(), "the projected step's element-wise launch");
}

template <typename Rule>
void launch_sums(DType dtype, unsigned blocks, const Desc<Rule>* d, const int64_t* starts,
                 int num_tasks, double* out) {
  switch (dtype) {
    case DType::kF32:
      sums_kernel<Rule, float><<<blocks, kSumThreads>>>(d, starts, num_tasks, out);
      break;
    case DType::kBF16:
      sums_kernel<Rule, BFloat16><<<blocks, kSumThreads>>>(d, starts, num_tasks, out);
      break;
    default:
      sums_kernel<Rule, Half><<<blocks, kSumThreads>>>(d, starts, num_tasks, out);
      break;
  }
  cuda_check(cudaGetLastError(), "the projected step's row-sum launch");
}

// Everything after validation, on the current device `device`.
template <typename Rule>
void run(const std::vector<CudaProjectedTask<Rule>>& tasks, int device,
         std::vector<ProjectionView>* views, std::vector<std::vector<RowSums>>* row_sums,
         std::vector<RowSums>* layer_sums) {
  const bool report = views != nullptr || row_sums != nullptr || layer_sums != nullptr;
  // Per dtype: flat tensors (descriptors, chunks), projected ones (descriptors, the first block
  // of each in the sums kernel, the chunks of the second pass); over all dtypes: the projected
  // tensors as choice_kernel sees them, and the task each came from.
  std::vector<Desc<Rule>> flat[3], proj[3];
  std::vector<ChunkRef> flat_chunks[3], second_chunks[3];
  std::vector<int64_t> starts[3];
  std::vector<ChoiceDesc> choice;
  std::vector<size_t> choice_task;
  std::vector<size_t> proj_choice[3];  // index in `choice` of proj[k][m]
  int64_t total_pieces = 0, total_rows = 0, total_groups = 0, total_scratch = 0;
  for (int k = 0; k < 3; ++k) {
    for (size_t i = 0; i < tasks.size(); ++i) {
      const CudaProjectedTask<Rule>& t = tasks[i];
      if (t.param.dtype != kTypes[k] || t.param.numel == 0) continue;
      Desc<Rule> d = desc_of(t, kTypes[k]);
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
      cuda_launch::add_chunks(second_chunks[k], proj[k].size(), d.n, kChunk);
      proj[k].push_back(d);
      ChoiceDesc c{};
      c.numel = t.param.numel;
      c.rows = t.rows;
      c.pieces = d.pieces;
      c.first_piece = d.first_piece;
      c.first_row = total_rows;
      c.first_group = total_groups;
      c.groups = (t.rows + kGroup - 1) / kGroup;
      c.scratch = total_scratch;
      c.delta = t.rule.proj.delta;
      c.eps = t.rule.proj.eps;
      total_rows += t.rows;
      total_groups += c.groups;
      total_scratch += c.groups > 1 ? (c.groups + kGroup - 1) / kGroup : 0;
      proj_choice[k].push_back(choice.size());
      choice.push_back(c);
      choice_task.push_back(i);
    }
  }
  unsigned flat_grid[3], sums_grid[3], second_grid[3];
  for (int k = 0; k < 3; ++k) {
    flat_grid[k] = grid_of(flat_chunks[k].size(), "element-wise");
    sums_grid[k] =
        grid_of(starts[k].empty() ? 0 : static_cast<size_t>(starts[k].back()), "row-sum");
    second_grid[k] = grid_of(second_chunks[k].size(), "element-wise");
  }
  const unsigned choice_grid = grid_of(static_cast<size_t>(total_groups), "view-choice");

  // The device's working memory for the projected tensors, carved from one buffer.
  size_t work_bytes = 0;
  const auto carve = [&work_bytes](int64_t count, size_t size) {
    const size_t at = work_bytes;
    work_bytes = (work_bytes + static_cast<size_t>(count) * size + 255) / 256 * 256;
    return at;
  };
  const size_t piece_at = carve(total_pieces, sizeof(RowSums));
  const size_t rows_at = carve(report ? total_rows : 0, sizeof(RowSums));
  const size_t partial_at = carve(total_groups, sizeof(RowSums));
  const size_t scratch_at = carve(total_scratch, sizeof(RowSums));
  const size_t coef_at = carve(total_rows, sizeof(float));
  const size_t pass_at = carve(total_groups, sizeof(int));
  const size_t counter_at = carve(static_cast<int64_t>(choice.size()), sizeof(unsigned));
  const size_t choice_at = carve(static_cast<int64_t>(choice.size()), sizeof(Choice));
  unsigned char* work = nullptr;
  if (!choice.empty()) {
    work =
        static_cast<unsigned char*>(cuda_codec::scratch(cuda_codec::Scratch::kRowSums, work_bytes));
  }
  const auto at = [work](size_t offset) { return work + offset; };
  auto* dev_choices = reinterpret_cast<Choice*>(at(choice_at));
  for (int k = 0; k < 3; ++k) {
    for (size_t m = 0; m < proj[k].size(); ++m) {
      const size_t c = proj_choice[k][m];
      proj[k][m].coef = reinterpret_cast<const float*>(at(coef_at)) + choice[c].first_row;
      proj[k][m].choice = dev_choices + c;
    }
  }

  cuda_launch::HostTable table;
  size_t flat_at[3], chunk_at[3], proj_at[3], start_at[3], second_at[3];
  for (int k = 0; k < 3; ++k) {
    flat_at[k] = table.append(flat[k]);
    chunk_at[k] = table.append(flat_chunks[k]);
    proj_at[k] = table.append(proj[k]);
    start_at[k] = table.append(starts[k]);
    second_at[k] = table.append(second_chunks[k]);
  }
  const size_t choice_desc_at = table.append(choice);
  const unsigned char* dev =
      cuda_launch::upload(table, cuda_codec::Scratch::kLaunchTable, "the projected step's table");
  const auto descs = [dev](size_t offset) {
    return reinterpret_cast<const Desc<Rule>*>(dev + offset);
  };
  const auto chunks = [dev](size_t offset) {
    return reinterpret_cast<const ChunkRef*>(dev + offset);
  };

  // Pass 1 (the only one of flat tensors).
  auto* dev_sums = reinterpret_cast<double*>(at(piece_at));
  for (int k = 0; k < 3; ++k) {
    if (!flat_chunks[k].empty()) {
      launch_elementwise<kFlat>(kTypes[k], flat_grid[k], descs(flat_at[k]), chunks(chunk_at[k]));
    }
    if (!proj[k].empty()) {
      launch_sums(kTypes[k], sums_grid[k], descs(proj_at[k]),
                  reinterpret_cast<const int64_t*>(dev + start_at[k]),
                  static_cast<int>(proj[k].size()), dev_sums);
    }
  }
  if (choice.empty()) {
    if (views != nullptr) views->assign(tasks.size(), ProjectionView::kNone);
    return;
  }

  // The views, on the device.
  auto* rows_out = report ? reinterpret_cast<RowSums*>(at(rows_at)) : nullptr;
  auto* counters = reinterpret_cast<unsigned*>(at(counter_at));
  cuda_check(cudaMemsetAsync(counters, 0, choice.size() * sizeof(unsigned), nullptr),
             "cudaMemsetAsync of the projected step's counters");
  choice_kernel<<<choice_grid, kGroup>>>(
      reinterpret_cast<const ChoiceDesc*>(dev + choice_desc_at), static_cast<int>(choice.size()),
      dev_sums, rows_out, reinterpret_cast<float*>(at(coef_at)),
      reinterpret_cast<RowSums*>(at(partial_at)), reinterpret_cast<int*>(at(pass_at)),
      reinterpret_cast<RowSums*>(at(scratch_at)), counters, dev_choices);
  cuda_check(cudaGetLastError(), "the projected step's view-choice launch");

  // Pass 2 of the projected tensors.
  for (int k = 0; k < 3; ++k) {
    if (second_chunks[k].empty()) continue;
    launch_elementwise<kSecond>(kTypes[k], second_grid[k], descs(proj_at[k]), chunks(second_at[k]));
  }
  if (!report) return;

  // What the tests compare with the CPU's: waits for the step.
  std::vector<Choice> picked(choice.size());
  cuda_check(cudaMemcpy(picked.data(), dev_choices, picked.size() * sizeof(Choice),
                        cudaMemcpyDeviceToHost),
             "copy of the projected step's views");
  std::vector<RowSums> all_rows(static_cast<size_t>(total_rows));
  if (row_sums != nullptr) {
    cuda_check(cudaMemcpy(all_rows.data(), rows_out, all_rows.size() * sizeof(RowSums),
                          cudaMemcpyDeviceToHost),
               "copy of the projected step's row sums");
  }
  if (views != nullptr) views->assign(tasks.size(), ProjectionView::kNone);
  for (size_t c = 0; c < choice.size(); ++c) {
    const size_t i = choice_task[c];
    if (views != nullptr) (*views)[i] = static_cast<ProjectionView>(picked[c].view);
    if (layer_sums != nullptr) (*layer_sums)[i] = picked[c].layer;
    if (row_sums != nullptr) {
      const auto first = all_rows.begin() + choice[c].first_row;
      (*row_sums)[i].assign(first, first + choice[c].rows);
    }
  }
}

}  // namespace

template <typename Rule>
void cuda_projected_apply(const std::vector<CudaProjectedTask<Rule>>& tasks,
                          std::vector<ProjectionView>* views,
                          std::vector<std::vector<RowSums>>* row_sums,
                          std::vector<RowSums>* layer_sums) {
  const int device = validate(tasks);
  if (views != nullptr) views->assign(tasks.size(), ProjectionView::kNone);
  if (row_sums != nullptr) row_sums->assign(tasks.size(), {});
  if (layer_sums != nullptr) layer_sums->assign(tasks.size(), RowSums{});
  bool any = false;
  for (const auto& t : tasks) any = any || t.param.numel > 0;
  if (!any) return;
  cuda_launch::with_device(device, [&] { run(tasks, device, views, row_sums, layer_sums); });
}

#define TERSE_CUDA_PROJECTED_INSTANTIATE(R)                                    \
  template void cuda_projected_apply(const std::vector<CudaProjectedTask<R>>&, \
                                     std::vector<ProjectionView>*,             \
                                     std::vector<std::vector<RowSums>>*, std::vector<RowSums>*);
TERSE_CUDA_PROJECTED_RULES(TERSE_CUDA_PROJECTED_INSTANTIATE)
#undef TERSE_CUDA_PROJECTED_INSTANTIATE

}  // namespace terse

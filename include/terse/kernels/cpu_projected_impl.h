#pragma once

// The definition of cpu_projected_apply (declared in cpu_projected.h), for the source file that
// instantiates it for a Rule (src/optim/adamp.cc, src/optim/sgdp.cc). Build that file with
// -O3 -fno-math-errno -ffp-contract=off -fopenmp-simd, as terse_kernels is: the target clones
// then give the same bits.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "terse/core/check.h"
#include "terse/core/dtype.h"
#include "terse/kernels/cpu_chunks.h"
#include "terse/kernels/cpu_projected.h"
#include "terse/kernels/cpu_threads.h"
#include "terse/kernels/projection_choice.h"

namespace terse {
namespace cpu_projected_detail {

// Sums over a row accumulate element i into lane i % kLanes of a GCC vector (the same lanes
// whatever vector width a target clone has), each lane in element order, and the lanes are
// added in a fixed tree: the same bits on every CPU, and on the GPU (projection_choice.h).
constexpr int kLanes = kProjectionLanes;
using Lanes = double __attribute__((vector_size(kLanes * sizeof(double))));
using LanesF = float __attribute__((vector_size(kLanes * sizeof(float))));
// Elements per block of the first pass: its element-wise part vectorises over a whole block.
constexpr int kBlock = 256;

template <typename Rule>
TERSE_FORCEINLINE float state1(const float* s1, int64_t i) {
  if constexpr (Rule::kNumStates > 1) return s1[i];
  (void)s1;
  (void)i;
  return 0.0f;
}

// Tensors that are never projected: decay and step in one pass, as the official code does them.
template <typename Rule, typename T>
__attribute__((target_clones("avx512f", "avx2", "default"))) void single_pass(
    const Rule& rule, T* __restrict p, const T* __restrict g, float* __restrict s0,
    float* __restrict s1, int64_t n) {
  const Rule r = rule;
  const float decay = r.proj.decay, neg_step = r.proj.neg_step;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float x0 = s0[i], x1 = state1<Rule>(s1, i);
    const float d = r.update(load_as_float(g, i), x0, x1);
    float pv = load_as_float(p, i);
    pv = pv * decay;
    pv = pv + neg_step * d;
    store_from_float(p, i, pv);
    s0[i] = x0;
    if constexpr (Rule::kNumStates > 1) s1[i] = x1;
  }
}

// First pass of a projected tensor over n elements of one row: advances the states and
// returns the row's sums (exact f32 x f32 products, summed in double). Per block: the
// element-wise update into small buffers, then the sums over them, 8 lanes at a time.
template <typename Rule, typename T>
__attribute__((target_clones("avx512f", "avx2", "default"))) RowSums first_pass(
    const Rule& rule, const T* __restrict p, const T* __restrict g, float* __restrict s0,
    float* __restrict s1, int64_t n) {
  const Rule r = rule;
  Lanes gp = {}, gg = {}, pp = {}, pd = {};
  alignas(64) float gb[kBlock], pb[kBlock], db[kBlock];
  for (int64_t b = 0; b < n; b += kBlock) {
    const int m = static_cast<int>(std::min<int64_t>(kBlock, n - b));
#pragma omp simd
    for (int j = 0; j < m; ++j) {
      const int64_t i = b + j;
      float x0 = s0[i], x1 = state1<Rule>(s1, i);
      const float gv = load_as_float(g, i);
      db[j] = r.update(gv, x0, x1);
      s0[i] = x0;
      if constexpr (Rule::kNumStates > 1) s1[i] = x1;
      gb[j] = gv;
      pb[j] = load_as_float(p, i);
    }
    // Zeros after the last element fill its lane group and add nothing.
    for (int j = m; j < (m + kLanes - 1) / kLanes * kLanes; ++j) gb[j] = pb[j] = db[j] = 0.0f;
    for (int j = 0; j < m; j += kLanes) {
      LanesF gf, pf, df;
      std::memcpy(&gf, gb + j, sizeof gf);
      std::memcpy(&pf, pb + j, sizeof pf);
      std::memcpy(&df, db + j, sizeof df);
      const Lanes gd = __builtin_convertvector(gf, Lanes);
      const Lanes pv = __builtin_convertvector(pf, Lanes);
      const Lanes dd = __builtin_convertvector(df, Lanes);
      gp += gd * pv;
      gg += gd * gd;
      pp += pv * pv;
      pd += pv * dd;
    }
  }
  const auto tree = [](const Lanes& x) {
    return ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]));
  };
  return RowSums{tree(gp), tree(gg), tree(pp), tree(pd)};
}

// Second pass: perturb from the advanced states, minus theta * coef where projected (coef =
// <theta,perturb> / (|theta| + eps)^2 of the row or layer), then decay and step.
template <bool kProject, typename Rule, typename T>
__attribute__((target_clones("avx512f", "avx2", "default"))) void second_pass(
    const Rule& rule, T* __restrict p, const T* __restrict g, const float* __restrict s0,
    const float* __restrict s1, int64_t n, float coef, float decay) {
  const Rule r = rule;
  const float neg_step = r.proj.neg_step;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float pv = load_as_float(p, i);
    float d = r.perturb(load_as_float(g, i), s0[i], state1<Rule>(s1, i));
    if constexpr (kProject) d = d - pv * coef;
    pv = pv * decay;
    pv = pv + neg_step * d;
    store_from_float(p, i, pv);
  }
}

// Calls fn(typed param pointer, typed grad pointer) for the task's storage type.
template <typename Task, typename Fn>
void with_storage(const Task& t, const Fn& fn) {
  switch (t.param.dtype) {
    case DType::kF32:
      fn(static_cast<float*>(t.param.data), static_cast<const float*>(t.grad.data));
      break;
    case DType::kBF16:
      fn(static_cast<BFloat16*>(t.param.data), static_cast<const BFloat16*>(t.grad.data));
      break;
    case DType::kF16:
      fn(static_cast<Half*>(t.param.data), static_cast<const Half*>(t.grad.data));
      break;
    default:
      break;  // rejected by validate() before any thread starts
  }
}

// A piece of work: elements [begin, end) of task `task`, inside rows [row0, row1) when it is
// projected (a whole number of rows, or a piece of one long row); `slot` is the index of its
// first row's sums in the partial sums.
struct Item {
  size_t task;
  int64_t begin, end, row0, row1;
  size_t slot;
};

template <typename Rule>
void validate(const std::vector<CpuProjectedTask<Rule>>& tasks) {
  for (size_t i = 0; i < tasks.size(); ++i) {
    const auto& t = tasks[i];
    TERSE_CHECK(t.param.device.is_cpu() && t.grad.device.is_cpu(), InvalidArgument,
                "cpu_projected_apply: tensor ", i, " is not on the CPU (param ", t.param.str(),
                ", grad ", t.grad.str(), "); step CPU tensors");
    check_projected_task(t, i, "cpu_projected_apply");
  }
}

// Cuts every task into items of about kCpuChunkElements; returns the number of sum slots. A
// projected row's pieces are the ones projection_choice.h names (the GPU takes the same).
template <typename Rule>
size_t make_items(const std::vector<CpuProjectedTask<Rule>>& tasks, std::vector<Item>& items,
                  std::vector<size_t>& first_item) {
  constexpr int64_t kChunk = kCpuChunkElements;
  size_t slots = 0;
  first_item.assign(tasks.size() + 1, 0);
  for (size_t i = 0; i < tasks.size(); ++i) {
    first_item[i] = items.size();
    const int64_t n = tasks[i].param.numel;
    const int64_t rows = tasks[i].rows;
    if (n == 0) continue;
    if (rows == 0) {
      for (int64_t b = 0; b < n; b += kChunk)
        items.push_back({i, b, std::min(n, b + kChunk), 0, 0, 0});
      continue;
    }
    const int64_t len = n / rows;
    if (len >= kChunk) {
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t b = r * len; b < (r + 1) * len; b += kChunk) {
          items.push_back({i, b, std::min((r + 1) * len, b + kChunk), r, r + 1, slots++});
        }
      }
    } else {
      const int64_t per = std::max<int64_t>(1, kChunk / len);
      for (int64_t r = 0; r < rows; r += per) {
        const int64_t r1 = std::min(rows, r + per);
        items.push_back({i, r * len, r1 * len, r, r1, slots});
        slots += static_cast<size_t>(r1 - r);
      }
    }
  }
  first_item[tasks.size()] = items.size();
  return slots;
}

template <typename Fn>
void for_each_item(size_t count, const Fn& fn) {
  const int threads = cpu_threads();
#ifdef _OPENMP
  if (threads > 1 && count > 1) {
    const auto n = static_cast<int64_t>(count);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t k = 0; k < n; ++k) fn(static_cast<size_t>(k));
    return;
  }
#endif
  (void)threads;
  for (size_t k = 0; k < count; ++k) fn(k);
}

}  // namespace cpu_projected_detail

template <typename Rule>
std::vector<ProjectionView> cpu_projected_apply(const std::vector<CpuProjectedTask<Rule>>& tasks,
                                                std::vector<std::vector<RowSums>>* row_sums) {
  using namespace cpu_projected_detail;
  validate(tasks);
  if (row_sums != nullptr) row_sums->assign(tasks.size(), {});
  std::vector<Item> items;
  std::vector<size_t> first_item;
  std::vector<RowSums> partial(make_items(tasks, items, first_item));

  // Pass 1 (pass 0 of never-projected tensors).
  for_each_item(items.size(), [&](size_t k) {
    const Item& it = items[k];
    const auto& t = tasks[it.task];
    float* s0 = t.states[0];
    float* s1 = Rule::kNumStates > 1 ? t.states[Rule::kNumStates - 1] : nullptr;
    with_storage(t, [&](auto* p, const auto* g) {
      if (t.rows == 0) {
        single_pass(t.rule, p + it.begin, g + it.begin, s0 + it.begin, s1 ? s1 + it.begin : nullptr,
                    it.end - it.begin);
        return;
      }
      const int64_t len = t.param.numel / t.rows;
      for (int64_t r = it.row0; r < it.row1; ++r) {
        const int64_t b = std::max(it.begin, r * len), e = std::min(it.end, (r + 1) * len);
        partial[it.slot + static_cast<size_t>(r - it.row0)] =
            first_pass(t.rule, p + b, g + b, s0 + b, s1 ? s1 + b : nullptr, e - b);
      }
    });
  });

  // The decision per tensor, on the host: sums of a split row are added in item order.
  std::vector<ProjectionView> views(tasks.size(), ProjectionView::kNone);
  std::vector<std::vector<float>> coefs(tasks.size());
  std::vector<RowSums> sums;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const auto& t = tasks[i];
    if (t.rows == 0 || t.param.numel == 0) continue;
    sums.assign(static_cast<size_t>(t.rows), RowSums{});
    for (size_t k = first_item[i]; k < first_item[i + 1]; ++k) {
      const Item& it = items[k];
      for (int64_t r = it.row0; r < it.row1; ++r) {
        sums[static_cast<size_t>(r)] += partial[it.slot + static_cast<size_t>(r - it.row0)];
      }
    }
    views[i] = choose_view(sums, t.param.numel, t.rule.proj.delta, t.rule.proj.eps, coefs[i]);
    if (row_sums != nullptr) (*row_sums)[i] = sums;
  }

  // Pass 2 of the projected tensors.
  for_each_item(items.size(), [&](size_t k) {
    const Item& it = items[k];
    const auto& t = tasks[it.task];
    if (t.rows == 0) return;
    const float* s0 = t.states[0];
    const float* s1 = Rule::kNumStates > 1 ? t.states[Rule::kNumStates - 1] : nullptr;
    const bool project = views[it.task] != ProjectionView::kNone;
    const float decay = project ? t.rule.proj.decay_projected : t.rule.proj.decay;
    const std::vector<float>& coef = coefs[it.task];
    with_storage(t, [&](auto* p, const auto* g) {
      const int64_t len = t.param.numel / t.rows;
      for (int64_t r = it.row0; r < it.row1; ++r) {
        const int64_t b = std::max(it.begin, r * len), e = std::min(it.end, (r + 1) * len);
        const float* s1b = s1 ? s1 + b : nullptr;
        if (project) {
          second_pass<true>(t.rule, p + b, g + b, s0 + b, s1b, e - b, coef[static_cast<size_t>(r)],
                            decay);
        } else {
          second_pass<false>(t.rule, p + b, g + b, s0 + b, s1b, e - b, 0.0f, decay);
        }
      }
    });
  });
  return views;
}

}  // namespace terse

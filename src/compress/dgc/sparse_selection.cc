#include "terse/compress/dgc/sparse_selection.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "adapt.h"
#include "collect.h"
#include "parts.h"
#include "terse/core/check.h"
#include "terse/core/philox.h"

namespace terse {
namespace {

using dgc_detail::Adapt;
using dgc_detail::adapt_threshold;
using dgc_detail::collect_at_least;
using dgc_detail::PhaseClock;

// Philox stream id of the sample start, so other users of the same seed draw other numbers.
constexpr uint64_t kSampleStartStream = 0x0D6C'5A4D'0000'0001ULL;

void check_density(double density) {
  TERSE_CHECK(density > 0.0 && density <= 1.0, InvalidArgument,
              "DGC density must be in (0, 1], got ", density,
              "; pass the fraction of elements to keep (e.g. 0.001)");
}

// collect_at_least over [0, n) split into `threads` contiguous chunks; concatenating the
// chunks in order keeps the indices ascending, so the result does not depend on threads.
void collect_parallel(const float* x, int64_t n, float thr, int threads, DgcCandidates& out) {
  out.idx.clear();
  out.mag.clear();
  const int t = dgc_detail::parts_for(n, threads);
  std::vector<DgcCandidates> parts(static_cast<size_t>(t - 1));
  dgc_detail::for_parts(n, t, [&](int w, int64_t b, int64_t e) {
    collect_at_least(x, b, e, thr, w == 0 ? out : parts[static_cast<size_t>(w - 1)]);
  });
  for (const DgcCandidates& p : parts) {
    out.idx.insert(out.idx.end(), p.idx.begin(), p.idx.end());
    out.mag.insert(out.mag.end(), p.mag.begin(), p.mag.end());
  }
}

SparseSelection finish(const float* x, std::vector<int64_t> idx, double thr, int rounds) {
  SparseSelection s;
  s.indices = std::move(idx);
  s.values.resize(s.indices.size());
  for (size_t j = 0; j < s.indices.size(); ++j) s.values[j] = x[s.indices[j]];
  s.threshold = thr;
  s.rounds = rounds;
  return s;
}

// Exact top-k of the candidates' magnitudes, returned in ascending index order; ties at the k-th
// value broken by lower index. Works on packed (magnitude, index) pairs, so the partition reads
// contiguous memory instead of gathering x at every comparison.
std::vector<int64_t> topk_of_candidates(const DgcCandidates& c, int64_t k) {
  struct Entry {
    float mag;
    int64_t idx;
  };
  std::vector<Entry> e;
  e.reserve(c.idx.size());
  for (size_t j = 0; j < c.idx.size(); ++j) e.push_back(Entry{c.mag[j], c.idx[j]});
  std::nth_element(e.begin(), e.begin() + (k - 1), e.end(), [](const Entry& a, const Entry& b) {
    return a.mag > b.mag || (a.mag == b.mag && a.idx < b.idx);
  });
  std::vector<int64_t> order(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) order[static_cast<size_t>(j)] = e[static_cast<size_t>(j)].idx;
  std::sort(order.begin(), order.end());
  return order;
}

[[noreturn]] void throw_sampled_nan(int64_t i, int64_t n) {
  TERSE_THROW(NumericalError, "DGC selection found NaN at index ", i, " of ", n,
              "; the gradient or accumulated velocity diverged: lower the learning rate or "
              "enable clipping");
}

// The r-th largest of the sample (0 when r is 0 or past its end), after the nth_element that put
// its ks-th largest at pool[ks - 1], pool being the sample or `high` (its values at or above a
// threshold, in which case the sample is untouched).
float rank_value(std::vector<float>& sample, std::vector<float>& high,
                 const std::vector<float>& pool, int64_t ks, int64_t r) {
  if (r < 1 || r > static_cast<int64_t>(sample.size())) return 0.0f;
  if (r == ks) return pool[static_cast<size_t>(ks - 1)];
  auto nth = [r](std::vector<float>& v, int64_t from) {
    std::nth_element(v.begin() + from, v.begin() + (r - 1), v.end(), std::greater<>());
    return v[static_cast<size_t>(r - 1)];
  };
  // Past ks, the partitioned pool holds the rest below pool[ks - 1]: search only there (high
  // holds the sample's |high| largest). Otherwise the whole sample.
  if (r > ks && &pool == &high && static_cast<int64_t>(high.size()) >= r) return nth(high, ks);
  if (r > ks && &pool == &sample) return nth(sample, ks);
  return nth(sample, 0);
}

// The selection from the sample of |x| onwards (the reference's threshold estimate, scans and
// adaptation rounds). With a prescan list, every pass at a threshold at or above its threshold
// filters the list (a superset of that pass's hits, in the same order) instead of reading x.
SparseSelection select_sampled(const float* x, const DgcSamplePlan& plan,
                               std::vector<float>& sample, DgcPrescan* pre,
                               const DgcSelectOptions& options, DgcSelectProfile* profile,
                               PhaseClock& clock) {
  const int64_t n = plan.numel;
  const int64_t k = plan.num_selects;
  DgcSelectProfile unused;
  DgcSelectProfile& prof = profile != nullptr ? *profile : unused;
  const bool use_list = pre != nullptr && pre->has_list;
  const int64_t ks = std::min<int64_t>(plan.top_k_samples, static_cast<int64_t>(sample.size()));
  // The ks-th largest sampled value. When at least ks of them are >= the list's threshold, they
  // hold the ks largest, so the nth_element over them alone finds the same value.
  std::vector<float> high;
  if (use_list) {
    for (const float a : sample) {
      if (a >= pre->list_threshold) high.push_back(a);
    }
  }
  std::vector<float>& pool = static_cast<int64_t>(high.size()) >= ks ? high : sample;
  std::nth_element(pool.begin(), pool.begin() + (ks - 1), pool.end(), std::greater<>());
  float thr = pool[static_cast<size_t>(ks - 1)];
  if (pre != nullptr) {
    // A list whose threshold sampled within a factor 2 of the aimed rank keeps it (no search).
    const auto h = static_cast<int64_t>(high.size());
    const int64_t r = pre->next_rank;
    pre->next_threshold = use_list && r >= 1 && 2 * h >= r && h <= 2 * r
                              ? pre->list_threshold
                              : rank_value(sample, high, pool, ks, r);
  }
  clock.lap(&prof.threshold_s);

  DgcCandidates cand;
  auto scan = [&](float t) {
    if (use_list && t >= pre->list_threshold) {
      cand.idx.clear();
      cand.mag.clear();
      const DgcCandidates& l = pre->list;
      for (size_t j = 0; j < l.idx.size(); ++j) {
        if (l.mag[j] >= t) {
          cand.idx.push_back(l.idx[j]);
          cand.mag.push_back(l.mag[j]);
        }
      }
      ++prof.list_scans;
    } else {
      collect_parallel(x, n, t, options.threads, cand);
      ++prof.full_scans;
    }
  };
  scan(thr);
  int rounds = 0;
  // Adapt only when the threshold came from a true sample (the reference: n > num_samples).
  if (n > plan.num_samples) {
    for (int it = 0; it < options.max_adaptation_iters; ++it) {
      const Adapt a = adapt_threshold(static_cast<int64_t>(cand.idx.size()), k, options, thr);
      if (a == Adapt::kResample) cand.idx = topk_of_candidates(cand, k);
      if (a != Adapt::kRescan) break;
      ++rounds;
      scan(thr);
    }
  }
  std::vector<int64_t> idx = std::move(cand.idx);
  // The reference's final truncation keeps the first k in index order, not the largest.
  if (static_cast<int64_t>(idx.size()) > k) idx.resize(static_cast<size_t>(k));
  SparseSelection s = finish(x, std::move(idx), thr, rounds);
  clock.lap(&prof.scan_s);
  return s;
}

}  // namespace

int64_t dgc_num_selects(int64_t n, double density) {
  check_density(density);
  TERSE_CHECK(n >= 1, InvalidArgument, "DGC selection needs n >= 1 elements, got ", n,
              "; send empty tensors dense or skip them");
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(static_cast<double>(n) * density)));
}

DgcSamplePlan dgc_sample_plan(int64_t n, double density, double sample_ratio) {
  TERSE_CHECK(sample_ratio > 0.0 && sample_ratio <= 1.0, InvalidArgument,
              "DGC sample_ratio must be in (0, 1], got ", sample_ratio,
              "; the reference default is 0.01");
  DgcSamplePlan p;
  p.numel = n;
  p.num_selects = dgc_num_selects(n, density);
  // The reference clamps the sample ratio to [0.01, 1] and samples at least ceil(2 / density)
  // elements, so the sample's top-k holds at least two elements.
  const double sigma = std::max(0.01, sample_ratio);
  const auto pct = static_cast<int64_t>(std::ceil(static_cast<double>(n) * sigma));
  const auto cpr = static_cast<int64_t>(std::ceil(2.0 / density));
  if (n <= cpr) {
    p.stride = 1;
    p.num_samples = n;
  } else {
    const int64_t want = std::max(pct, cpr);
    p.stride =
        static_cast<int64_t>(std::ceil(static_cast<double>(n) / static_cast<double>(want) / 32.0)) *
            32 +
        1;
    p.num_samples = n / p.stride;
    while (p.num_samples < want && p.stride > 1) {
      p.stride = std::max<int64_t>(1, p.stride - 8);
      p.num_samples = n / p.stride;
    }
  }
  p.top_k_samples = std::max<int64_t>(
      1, static_cast<int64_t>(std::ceil(static_cast<double>(p.num_samples) * density)));
  return p;
}

SparseSelection dgc_select(const float* x, int64_t n, double density, uint64_t seed_step,
                           const DgcSelectOptions& options) {
  return dgc_select_planned(x, dgc_sample_plan(n, density, options.sample_ratio), seed_step,
                            options);
}

int64_t dgc_sample_start(const DgcSamplePlan& plan, uint64_t seed_step,
                         const DgcSelectOptions& options) {
  if (plan.stride <= 1) return 0;
  const Philox4x32 gen(options.seed);
  const auto r = gen.at(seed_step, kSampleStartStream);
  return static_cast<int64_t>(r.x % static_cast<uint64_t>(plan.stride));
}

SparseSelection dgc_select_planned(const float* x, const DgcSamplePlan& plan, uint64_t seed_step,
                                   const DgcSelectOptions& options, DgcSelectProfile* profile) {
  dgc_detail::check_select(x, plan, options, "dgc_select");
  PhaseClock clock(profile != nullptr);
  // Strided sample of |x| from a random start in [0, stride - 1].
  const int64_t n = plan.numel;
  std::vector<float> sample;
  sample.reserve(static_cast<size_t>(n / plan.stride + 1));
  for (int64_t i = dgc_sample_start(plan, seed_step, options); i < n; i += plan.stride) {
    const float a = std::fabs(x[i]);
    if (std::isnan(a)) throw_sampled_nan(i, n);
    sample.push_back(a);
  }
  return select_sampled(x, plan, sample, nullptr, options, profile, clock);
}

SparseSelection dgc_select_prescanned(const float* x, const DgcSamplePlan& plan, uint64_t seed_step,
                                      DgcPrescan& pre, const DgcSelectOptions& options,
                                      DgcSelectProfile* profile) {
  dgc_detail::check_select(x, plan, options, "dgc_select");
  PhaseClock clock(profile != nullptr);
  if (pre.nan_at >= 0) throw_sampled_nan(pre.nan_at, plan.numel);
  const int64_t want =
      (plan.numel - dgc_sample_start(plan, seed_step, options) + plan.stride - 1) / plan.stride;
  TERSE_CHECK(static_cast<int64_t>(pre.sample.size()) == want, InvalidArgument,
              "dgc_select_prescanned got a sample of ", pre.sample.size(),
              " elements where the plan (numel ", plan.numel, ", stride ", plan.stride, ") takes ",
              want, " at this step; gather it from dgc_sample_start at the plan's stride");
  return select_sampled(x, plan, pre.sample, &pre, options, profile, clock);
}

SparseSelection exact_topk_select(const float* x, int64_t n, int64_t k) {
  TERSE_CHECK(n >= 0 && k >= 0 && k <= n, InvalidArgument, "exact top-k needs 0 <= k <= n, got k ",
              k, " for n ", n, "; pass k = ceil(density * n)");
  SparseSelection s;
  if (k == 0) return s;
  TERSE_CHECK(x != nullptr, InvalidArgument, "exact_topk_select got a null pointer for ", n,
              " elements; pass the tensor's data");
  std::vector<float> mag(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) mag[static_cast<size_t>(i)] = std::fabs(x[i]);
  for (int64_t i = 0; i < n; ++i) {
    TERSE_CHECK(!std::isnan(mag[static_cast<size_t>(i)]), NumericalError,
                "exact top-k found NaN at index ", i, " of ", n,
                "; the input diverged: lower the learning rate or enable clipping");
  }
  std::nth_element(mag.begin(), mag.begin() + (k - 1), mag.end(), std::greater<>());
  const float t = mag[static_cast<size_t>(k - 1)];
  int64_t greater = 0;
  for (int64_t i = 0; i < n; ++i) greater += std::fabs(x[i]) > t ? 1 : 0;
  int64_t ties_left = k - greater;
  std::vector<int64_t> idx;
  idx.reserve(static_cast<size_t>(k));
  for (int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    if (a > t) {
      idx.push_back(i);
    } else if (a == t && ties_left > 0) {
      idx.push_back(i);
      --ties_left;
    }
  }
  return finish(x, std::move(idx), t, 0);
}

}  // namespace terse

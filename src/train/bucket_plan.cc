#include "terse/train/bucket_plan.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "terse/core/check.h"

namespace terse {

BucketPlan::BucketPlan(const std::vector<ParamInfo>& params, double bucket_mb) {
  TERSE_CHECK(std::isfinite(bucket_mb) && bucket_mb > 0, InvalidArgument,
              "bucket size must be a positive number of MB, got ", bucket_mb,
              "; pass e.g. 25 (the default)");
  const double cap = bucket_mb * 1024.0 * 1024.0;
  TERSE_CHECK(cap < 1e18, InvalidArgument, "bucket size ", bucket_mb,
              " MB is too large; pass at most a few GB");
  // At least one byte, so a tiny cap means one parameter per bucket rather than empty buckets.
  cap_bytes_ = std::max<size_t>(1, static_cast<size_t>(cap));

  slots_.resize(params.size());
  std::map<DType, size_t> open;  // dtype -> index of its open bucket
  for (size_t k = params.size(); k-- > 0;) {
    const ParamInfo& p = params[k];
    TERSE_CHECK(p.numel >= 0, InvalidArgument, "parameter ", k, " has a negative size (", p.numel,
                "); pass the number of elements");
    TERSE_CHECK(p.dtype == DType::kF32 || p.dtype == DType::kBF16 || p.dtype == DType::kF16,
                InvalidArgument, "parameter ", k, " has dtype ", dtype_name(p.dtype),
                "; gradients must be f32, bf16 or f16");
    auto it = open.find(p.dtype);
    if (it == open.end()) {
      buckets_.push_back(Bucket{p.dtype, 0, {}});
      it = open.emplace(p.dtype, buckets_.size() - 1).first;
    }
    Bucket& b = buckets_[it->second];
    slots_[k] = BucketSlot{it->second, b.numel, p.numel};
    b.numel += p.numel;
    b.params.push_back(k);
    if (b.nbytes() >= cap_bytes_) open.erase(it);
  }
}

const BucketSlot& BucketPlan::slot(size_t param) const {
  TERSE_CHECK(param < slots_.size(), InvalidArgument, "parameter index ", param,
              " is out of range; the plan has ", slots_.size(), " parameters");
  return slots_[param];
}

}  // namespace terse

#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "terse/core/dtype.h"

namespace terse {

// Where one parameter's gradient lives: bucket `bucket`, elements [offset, offset + numel).
struct BucketSlot {
  size_t bucket = 0;
  int64_t offset = 0;
  int64_t numel = 0;
};

// A flat, dtype-homogeneous group of gradients that is all-reduced as one message.
struct Bucket {
  DType dtype = DType::kF32;
  int64_t numel = 0;
  // Parameter indices (registration order numbers) in the order they were placed, which is
  // reverse registration order: backward produces the last layer's gradients first.
  std::vector<size_t> params;

  size_t nbytes() const { return static_cast<size_t>(numel) * dtype_size(dtype); }
};

// Assigns parameters to buckets of about `bucket_mb` MB (1 MB = 2^20 bytes). Parameters are
// walked in reverse registration order; each dtype has one open bucket that is closed once it
// holds at least the cap, so a parameter larger than the cap gets a bucket of its own. Buckets
// are numbered in the order they were opened, which is the order backward fills them; the
// engine all-reduces them strictly in that order so every rank issues the same collectives.
class BucketPlan {
 public:
  struct ParamInfo {
    int64_t numel = 0;
    DType dtype = DType::kF32;
  };

  BucketPlan() = default;
  // Throws InvalidArgument when bucket_mb is not a positive finite number, a numel is
  // negative, or a dtype is not floating.
  BucketPlan(const std::vector<ParamInfo>& params, double bucket_mb);

  const std::vector<Bucket>& buckets() const { return buckets_; }
  size_t num_buckets() const { return buckets_.size(); }
  size_t num_params() const { return slots_.size(); }
  // Throws InvalidArgument when `param` is out of range.
  const BucketSlot& slot(size_t param) const;
  size_t cap_bytes() const { return cap_bytes_; }

 private:
  std::vector<Bucket> buckets_;
  std::vector<BucketSlot> slots_;
  size_t cap_bytes_ = 0;
};

}  // namespace terse

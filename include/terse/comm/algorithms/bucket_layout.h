#pragma once

#include <cstdint>
#include <vector>

#include "terse/comm/communicator.h"

namespace terse {

// Start-up check that every rank built the same gradient buckets: all_gathers a hash of
// `bucket_numels` and the bucket count from every rank; on a mismatch, all_gathers the sizes and
// throws InvalidArgument on every rank naming the first differing bucket, its size on this rank
// and on the first rank that differs. Collective: every rank must call it.
void check_bucket_layout(Communicator& comm, const std::vector<int64_t>& bucket_numels);

// FNV-1a 64 over the little-endian bytes of the count and the sizes.
uint64_t bucket_layout_hash(const std::vector<int64_t>& bucket_numels);

}  // namespace terse

#pragma once

#include <set>
#include <vector>

#include "terse/core/device.h"
#include "terse/optim/optimizer.h"
#include "terse/optim/param.h"

namespace terse::optim_detail {

// Throws InvalidArgument, naming `who`, the parameter ("param I of group G ('name')") and the
// fix, unless `p` is a CPU (or, with allow_cuda, CUDA) f32/bf16/f16 tensor with a gradient of
// the same dtype and size, non-null data when non-empty, a shape (if given) of non-negative
// dimensions whose product is its numel, and data not already in `seen` (every parameter once,
// across groups).
void check_param(const char* who, const Param& p, size_t group, size_t index,
                 std::set<const void*>& seen, bool allow_cuda = false);

// The device of every parameter and gradient of `groups` (the first one's; CPU when there are
// none). Throws InvalidArgument, naming `who` and the parameter, when one is elsewhere: one
// optimizer steps the parameters of one device.
Device one_device(const char* who, const std::vector<ParamGroup>& groups);

}  // namespace terse::optim_detail

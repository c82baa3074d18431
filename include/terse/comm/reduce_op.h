#pragma once

#include <cstdint>

namespace terse {

enum class ReduceOp : uint8_t { kSum = 0, kMax = 1, kMin = 2 };

const char* reduce_op_name(ReduceOp op);

}  // namespace terse

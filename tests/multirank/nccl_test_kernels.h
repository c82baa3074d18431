#pragma once

// Kernels the NCCL tests put on the legacy default stream to hold it busy.

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace terse::testing {

// One thread that spins for `nanoseconds` of GPU wall time (%globaltimer), then `n` bytes of
// `dst` set to `value`, both on `stream`. Work enqueued on the stream afterwards starts late, so
// a collective that did not wait for it would read the old bytes.
cudaError_t spin_then_fill(uint8_t* dst, size_t n, uint8_t value, uint64_t nanoseconds,
                           cudaStream_t stream);

}  // namespace terse::testing

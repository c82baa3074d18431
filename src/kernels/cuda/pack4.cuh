#pragma once

// Four consecutive elements, loaded and stored as one 16-byte (f32) or 8-byte (bf16, f16)
// access: fewer, wider memory transactions per byte, which is what brings a streaming kernel to
// the copy bandwidth. Internal to src/kernels/cuda.

namespace terse::cuda_launch {

template <typename T>
struct alignas(4 * sizeof(T)) Pack4 {
  T v[4];
};

}  // namespace terse::cuda_launch

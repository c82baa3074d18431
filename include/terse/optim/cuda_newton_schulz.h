#pragma once

#include <cstddef>
#include <cstdint>

#include "terse/optim/newton_schulz.h"

namespace terse {

// NewtonSchulz (newton_schulz.h) on one GPU: the same iteration, options and rounding, with the
// matrix products through cuBLAS and the rest in small kernels, all enqueued on the legacy
// default stream (after, and before, the element-wise optimizers' launches; nothing waits).
//   bf16 = true:  X, A and B held in bf16; products by cublasGemmStridedBatchedEx with bf16
//                 inputs, f32 accumulation and f32 output, each output rounded to bf16 by the
//                 kernel that combines it, in the CPU emulation's order (newton_schulz.cc).
//   bf16 = false: f32 throughout, cublasSgemmStridedBatched (no TF32).
// Each element-wise step gives the CPU's bits from the same inputs; the products sum in
// another order than CBLAS, so the result matches the CPU's within the tolerance worked out in
// docs/optimizers.md ("Muon on the GPU"), not bit for bit. The cuBLAS handle is one per device,
// made on first use and shared by every CudaNewtonSchulz of that device.
// A build without CUDA throws CudaError from run().
class CudaNewtonSchulz {
 public:
  explicit CudaNewtonSchulz(int device);
  ~CudaNewtonSchulz();
  CudaNewtonSchulz(const CudaNewtonSchulz&) = delete;
  CudaNewtonSchulz& operator=(const CudaNewtonSchulz&) = delete;

  // Orthogonalises, in place, `batch` row-major rows x cols f32 matrices stored one after
  // another in the memory of this object's device (transposing as the CPU does when
  // rows > cols, by cuBLAS's operand flags rather than a copy). Throws InvalidArgument for
  // negative sizes or steps, or a side or batch over cuBLAS's int range; CudaError when the
  // runtime or cuBLAS refuses.
  void run(float* x, int64_t batch, int64_t rows, int64_t cols, const NewtonSchulzOptions& o);

  // Bytes of GPU work memory held (grown to the largest call so far, kept for the next).
  size_t workspace_bytes() const { return bytes_; }

 private:
  void* reserve(size_t bytes);

  int device_;
  void* work_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace terse

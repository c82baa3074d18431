// The optim layer's CUDA entry points (CudaNewtonSchulz, cuda/matrix_kernels.h) for builds
// without CUDA: each says that this build has none. The optimizers call them only for CUDA
// parameters, which such a build cannot have made.
#include "cuda/matrix_kernels.h"
#include "terse/core/check.h"
#include "terse/optim/cuda_newton_schulz.h"

namespace terse {
namespace {
[[noreturn]] void no_cuda(const char* what) {
  TERSE_THROW(CudaError, what, ": this build of terse has no CUDA support (nvcc was not found or ",
              "TERSE_CUDA=OFF); rebuild with nvcc on the PATH, or pass CPU tensors");
}
}  // namespace

CudaNewtonSchulz::CudaNewtonSchulz(int device) : device_(device) {}
CudaNewtonSchulz::~CudaNewtonSchulz() = default;
void* CudaNewtonSchulz::reserve(size_t /*bytes*/) { no_cuda("CudaNewtonSchulz"); }
void CudaNewtonSchulz::run(float* /*x*/, int64_t /*batch*/, int64_t /*rows*/, int64_t /*cols*/,
                           const NewtonSchulzOptions& /*o*/) {
  no_cuda("CudaNewtonSchulz::run");
}

namespace optim_detail {
double cuda_sequential_sum_squares(int /*device*/, const float* /*x*/, int64_t /*n*/) {
  no_cuda("cuda_sequential_sum_squares");
}
void cuda_auon_cosh(int /*device*/, float* /*x*/, int64_t /*n*/, float /*inv*/, float /*gamma*/) {
  no_cuda("cuda_auon_cosh");
}
void cuda_frugal_coord_step(const FrugalAdamRule& /*adam*/, const FrugalInactiveRule& /*rest*/,
                            const uint64_t* /*mask*/, const int64_t* /*word_offsets*/,
                            const TensorView& /*param*/, const TensorView& /*grad*/, float* /*m*/,
                            float* /*v*/) {
  no_cuda("cuda_frugal_coord_step");
}
}  // namespace optim_detail

}  // namespace terse

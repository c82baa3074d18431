// Compiled instead of src/comm/nccl/*.cc when terse is built without NCCL.

#include "terse/comm/nccl_communicator.h"
#include "terse/core/check.h"

namespace terse {

std::unique_ptr<Communicator> make_nccl_communicator(const NcclOptions& /*options*/) {
  TERSE_THROW(InvalidArgument,
              "the \"nccl\" communicator is not available: terse was built without NCCL; it "
              "needs CUDA (nvcc), MPI and NCCL >= 2.14 (nccl.h and libnccl.so, e.g. apt-get "
              "install libnccl-dev, or the CUDA toolkit's copy in /usr/local/cuda); reconfigure "
              "with -DTERSE_CUDA=ON -DTERSE_MPI=ON -DTERSE_NCCL=ON, or use the \"mpi\" backend");
}

bool nccl_available() { return false; }

std::string nccl_library_version() { return ""; }

}  // namespace terse

// Compiled instead of src/comm/mpi/*.cc when terse is built without MPI.

#include <cstdlib>

#include "mpi/mpi_backend.h"
#include "terse/core/check.h"

namespace terse {

namespace detail {

std::unique_ptr<Communicator> make_mpi_communicator() {
  TERSE_THROW(InvalidArgument,
              "the \"mpi\" communicator is not available: terse was built without MPI; install "
              "Open MPI (apt-get install libopenmpi-dev openmpi-bin) and reconfigure with "
              "-DTERSE_MPI=ON, or use the \"local\" backend for a single process");
}

}  // namespace detail

bool mpi_available() { return false; }

std::string mpi_library_version() { return ""; }

void abort_job(int code) { std::exit(code); }

}  // namespace terse

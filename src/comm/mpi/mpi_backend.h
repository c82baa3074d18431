#pragma once

// The entry points of the Open MPI backend that the rest of terse_comm calls. Built from
// mpi_communicator.cc when TERSE_HAVE_MPI, else from no_mpi.cc.

#include <memory>

#include "terse/comm/communicator.h"

namespace terse::detail {

// Initialises MPI if needed and wraps a duplicate of MPI_COMM_WORLD. Without MPI: throws
// InvalidArgument saying how to build with it.
std::unique_ptr<Communicator> make_mpi_communicator();

// MPI_Init_thread(MPI_THREAD_MULTIPLE) once per process unless the program initialised MPI
// itself; finalised at exit when terse initialised it. For the backends that bootstrap over MPI
// (NCCL). Defined only in builds with MPI (no_mpi.cc has no such entry point).
void ensure_mpi_initialized();

}  // namespace terse::detail

// Failure drills for 4 ranks under mpiexec (see CMakeLists.txt):
//   die:  rank 2 SIGKILLs itself before an all_reduce; mpiexec must take the job down.
//   exit: rank 2 calls _exit(1) before an all_reduce (no MPI_Finalize); same expectation.
//   hang: rank 2 stays alive but never joins; the others time out (TERSE_TIMEOUT_S) and call
//         abort_job, which must take the job down, rank 2 included.

#include <unistd.h>
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "terse/comm/communicator.h"
#include "terse/core/error.h"

int main(int argc, char** argv) {
  const std::string mode = argc == 2 ? argv[1] : "";
  if (mode != "die" && mode != "exit" && mode != "hang") {
    std::fprintf(stderr, "usage: %s die|exit|hang (run under mpiexec -n 4)\n", argv[0]);
    return 2;
  }
  try {
    auto comm = terse::make_communicator("mpi");
    comm->barrier();                        // everyone is up before the drill starts
    std::vector<float> grad(300000, 1.0f);  // 1.2 MB
    if (comm->rank() == 2) {
      if (mode == "die") std::raise(SIGKILL);
      if (mode == "exit") _exit(1);
      // Alive but absent; abort_job on another rank must end this process too.
      std::this_thread::sleep_for(std::chrono::seconds(120));
      return 0;
    }
    comm->all_reduce(terse::TensorView::of(grad.data(), static_cast<int64_t>(grad.size())));
    std::fprintf(stderr, "rank %d: all_reduce completed although rank 2 never joined\n",
                 comm->rank());
    return 0;
  } catch (const terse::Error& e) {
    std::fprintf(stderr, "terse error: %s\n", e.what());
    std::fflush(stderr);
    terse::abort_job(3);
  }
}

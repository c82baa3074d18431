#pragma once

#include <cstdint>
#include <optional>

namespace terse::cli {

// Test-only fault injection (docs/cli.md): with TERSE_TEST_KILL_RANK=R and
// TERSE_TEST_KILL_STEP=S in the environment, rank R kills itself with SIGKILL when global step S
// completes, simulating a rank that dies (no destructors, no MPI finalize, no message).
struct FaultInjection {
  int rank = -1;
  int64_t step = 0;

  // Reads the two variables; std::nullopt when neither is set. Throws InvalidArgument when only
  // one is set or a value is not a non-negative integer (rank) / positive integer (step).
  static std::optional<FaultInjection> from_env();

  // Raises SIGKILL when (rank, step) match; returns otherwise.
  void maybe_kill(int this_rank, int64_t this_step) const;
};

}  // namespace terse::cli

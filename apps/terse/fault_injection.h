#pragma once

#include <cstdint>
#include <optional>

namespace terse::cli {

// Test-only fault injection (docs/cli.md): with TERSE_TEST_KILL_RANK=R and
// TERSE_TEST_KILL_STEP=S in the environment, rank R fails when global step S completes. By
// default it kills itself with SIGKILL, a rank that dies (no destructors, no MPI finalize, no
// message); with TERSE_TEST_KILL_MODE=stall it stops forever instead, a rank that hangs, which
// the others must detect with their collective timeout.
struct FaultInjection {
  enum class Mode { kKill, kStall };
  int rank = -1;
  int64_t step = 0;
  Mode mode = Mode::kKill;

  // Reads the variables; std::nullopt when neither RANK nor STEP is set. Throws InvalidArgument
  // when only one is set, a value is not a non-negative integer (rank) / positive integer
  // (step), or the mode is not "kill" or "stall".
  static std::optional<FaultInjection> from_env();

  // Kills or stalls this process when (rank, step) match; returns otherwise.
  void apply(int this_rank, int64_t this_step) const;
};

}  // namespace terse::cli

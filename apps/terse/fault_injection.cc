#include "fault_injection.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "terse/core/check.h"

namespace terse::cli {
namespace {

int64_t parse_env_int(const char* name, const char* text, int64_t min_value) {
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  TERSE_CHECK(errno == 0 && end != text && *end == '\0' && value >= min_value, InvalidArgument,
              name, "='", text, "' is not an integer >= ", min_value,
              "; set it to a valid value or unset it (it is a test-only fault injection)");
  return value;
}

}  // namespace

std::optional<FaultInjection> FaultInjection::from_env() {
  const char* rank_text = std::getenv("TERSE_TEST_KILL_RANK");
  const char* step_text = std::getenv("TERSE_TEST_KILL_STEP");
  if (rank_text == nullptr && step_text == nullptr) return std::nullopt;
  TERSE_CHECK(rank_text != nullptr && step_text != nullptr, InvalidArgument,
              "fault injection needs both TERSE_TEST_KILL_RANK and TERSE_TEST_KILL_STEP, got only ",
              rank_text != nullptr ? "TERSE_TEST_KILL_RANK" : "TERSE_TEST_KILL_STEP",
              "; set both or neither");
  FaultInjection fault;
  fault.rank = static_cast<int>(parse_env_int("TERSE_TEST_KILL_RANK", rank_text, 0));
  fault.step = parse_env_int("TERSE_TEST_KILL_STEP", step_text, 1);
  const char* mode_text = std::getenv("TERSE_TEST_KILL_MODE");
  const std::string mode = mode_text != nullptr ? mode_text : "kill";
  TERSE_CHECK(
      mode == "kill" || mode == "stall", InvalidArgument, "TERSE_TEST_KILL_MODE='", mode,
      "' is not 'kill' or 'stall'; set one of them or unset it (test-only fault injection)");
  fault.mode = mode == "stall" ? Mode::kStall : Mode::kKill;
  return fault;
}

void FaultInjection::apply(int this_rank, int64_t this_step) const {
  if (this_rank != rank || this_step != step) return;
  // The note goes out first so a test can tell an injected fault from a real one.
  const bool stall = mode == Mode::kStall;
  std::fprintf(stderr, "terse: TERSE_TEST_KILL: rank %d %s at step %lld\n", this_rank,
               stall ? "stalls forever" : "kills itself with SIGKILL",
               static_cast<long long>(this_step));
  std::fflush(stderr);
  if (stall) {
    for (;;) ::pause();  // until a signal ends the process (mpirun's, after another rank aborts)
  }
  ::raise(SIGKILL);
  _exit(9);  // Not reached: SIGKILL cannot be caught.
}

}  // namespace terse::cli

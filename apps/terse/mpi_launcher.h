#pragma once

#include <string>
#include <vector>

namespace terse::cli {

// `args` (the words after the subcommand) without --np and its value ("--np 4", "--np=4").
std::vector<std::string> strip_np_flag(const std::vector<std::string>& args);

// The mpirun command line that starts `np` ranks of `executable <subcommand> <args>`: -n np,
// --oversubscribe and --bind-to none (ranks share cores with other work), and
// --allow-run-as-root when running as root.
std::vector<std::string> mpirun_command(int np, const std::string& executable,
                                        const std::string& subcommand,
                                        const std::vector<std::string>& args, bool as_root);

// Sets, for the ranks that mpirun starts on this host (they inherit its environment),
// OMP_WAIT_POLICY=PASSIVE unless the user set it. OpenMP's default lets a thread spin for
// milliseconds after each parallel region; with several ranks per host those spinning threads
// take the cores that the next phase's exchange threads and MPI progress need (measured: 1-bit
// Adam's exchange 4-5 ms longer per step at 8 ranks, docs/results.md). Rank processes started
// some other way read the policy only when OpenMP loads, so they need it in their environment.
void prepare_rank_environment();

// Path of the running executable (/proc/self/exe resolved: a launched rank must not see
// /proc/self, which would be mpirun itself).
std::string self_executable();

// Runs `command` (command[0] looked up on PATH), forwarding SIGINT/SIGTERM/SIGHUP to it, and
// returns its exit status (128 + signal when it was killed). Throws Error when command[0] cannot
// be found or run, naming `install_hint`.
int run_and_wait(const std::vector<std::string>& command, const std::string& install_hint);

}  // namespace terse::cli

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

// Path of the running executable (/proc/self/exe resolved: a launched rank must not see
// /proc/self, which would be mpirun itself).
std::string self_executable();

// Runs `command` (command[0] looked up on PATH), forwarding SIGINT/SIGTERM/SIGHUP to it, and
// returns its exit status (128 + signal when it was killed). Throws Error when command[0] cannot
// be found or run, naming `install_hint`.
int run_and_wait(const std::vector<std::string>& command, const std::string& install_hint);

}  // namespace terse::cli

#pragma once

#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "terse/torch/train_config.h"

namespace terse::cli {

// Everything `terse train` parses: the trainer's config plus the launcher's own flags.
struct TrainFlags {
  torch_adapter::TrainConfig config;
  int np = 1;
  bool np_given = false;  // --np was on the command line
  double timeout_s = 60;
  bool quiet = false;
};

// Registers `train` and its flags on `app`; CLI11 checks ranges and types while parsing.
CLI::App* add_train_command(CLI::App& app, TrainFlags& flags);

// Checks, in this one process and before anything is launched, what CLI11 cannot: the
// optimizer spec (built on a dummy parameter), the lr schedule, the dataset files, the
// checkpoint and metrics paths, the fault-injection variables. Fills flags.config.timeout.
// Throws InvalidArgument naming the flag, the value and the fix.
void validate_train_flags(TrainFlags& flags);

// Validates, then either starts `mpirun` with this executable (--np N > 1 outside MPI) and
// returns its exit status, or trains in this process over MPI or a local communicator and
// returns the exit status of this rank. `args` are the words after `train` on the command line.
int run_train(TrainFlags& flags, const std::vector<std::string>& args);

}  // namespace terse::cli

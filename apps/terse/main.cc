// terse: the command line (train, info). See docs/cli.md.
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "exit_codes.h"
#include "info_command.h"
#include "train_command.h"

int main(int argc, char** argv) {
  using namespace terse::cli;
  CLI::App app{"terse: communication-efficient distributed training with momentum optimizers",
               "terse"};
  app.set_version_flag("--version", std::string("terse ") + version());
  app.require_subcommand(1);
  TrainFlags train_flags;
  CLI::App* train = add_train_command(app, train_flags);
  CLI::App* info =
      app.add_subcommand("info", "Print the build and the machine: one key: value a line");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int cli_code = app.exit(error);  // prints help, the version or the parse error
    return cli_code == 0 ? kExitOk : kExitInvalidArgument;
  }

  try {
    if (info->parsed()) return run_info(std::cout);
    train_flags.np_given = train->count("--np") > 0;
    // The words after `train`, as typed, for the ranks that --np starts.
    std::vector<std::string> args;
    bool after_train = false;
    for (int i = 1; i < argc; ++i) {
      if (after_train) args.emplace_back(argv[i]);
      if (!after_train && std::string(argv[i]) == "train") after_train = true;
    }
    return run_train(train_flags, args);
  } catch (const std::exception& error) {
    std::cerr << "terse: error: " << error.what() << std::endl;
    return exit_code_for(error);
  }
}

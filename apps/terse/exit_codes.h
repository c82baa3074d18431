#pragma once

#include <exception>

namespace terse::cli {

// Exit statuses of `terse`, documented in docs/cli.md; scripts and tests rely on them.
constexpr int kExitOk = 0;
constexpr int kExitOther = 1;
constexpr int kExitInvalidArgument = 2;
constexpr int kExitCorruptData = 3;
constexpr int kExitNumerical = 4;
constexpr int kExitCommOrTimeout = 5;

// The exit status for an error escaping a command: by terse error type, kExitOther otherwise.
int exit_code_for(const std::exception& error);

}  // namespace terse::cli

#pragma once

#include <string>

namespace terse {

// Removes path and, when it is a directory, everything below it (symbolic links are removed, not
// followed), like std::filesystem::remove_all. A missing path is not an error. Returns false and
// sets *error (when given) to what failed and why, leaving the rest in place.
// Why not std::filesystem::remove_all: the PyTorch 2.x wheels' libtorch.so exports its own copy
// of it (from the static libstdc++ parts of their devtoolset build), programs linked with libtorch
// bind to that copy, and with torch 2.11 it jumps to a null address on a non-empty directory.
bool remove_tree(const std::string& path, std::string* error = nullptr);

}  // namespace terse

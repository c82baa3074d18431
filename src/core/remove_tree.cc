#include "terse/core/remove_tree.h"

#include <ftw.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace terse {
namespace {

// nftw gives its callback no user pointer; the failing path is kept here for the message.
thread_local std::string* failed_path = nullptr;

int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  if (std::remove(path) == 0) return 0;
  if (failed_path != nullptr) *failed_path = path;
  return errno == 0 ? -1 : errno;
}

}  // namespace

bool remove_tree(const std::string& path, std::string* error) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return true;
    if (error != nullptr) *error = path + ": " + std::strerror(errno);
    return false;
  }
  std::string failed;
  failed_path = &failed;
  // Depth first (children before their directory), without following links.
  const int rc = nftw(path.c_str(), remove_entry, 32, FTW_DEPTH | FTW_PHYS);
  failed_path = nullptr;
  if (rc == 0) return true;
  if (error != nullptr) {
    const int err = rc > 0 ? rc : errno;
    *error = (failed.empty() ? path : failed) + ": " + std::strerror(err);
  }
  return false;
}

}  // namespace terse

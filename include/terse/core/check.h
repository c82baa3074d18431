#pragma once

#include <sstream>
#include <string>
#include <utility>

#include "terse/core/error.h"

namespace terse::detail {

template <typename... Args>
std::string str_cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

template <typename E, typename... Args>
[[noreturn]] void throw_error(const char* file, int line, Args&&... args) {
  throw E(str_cat(std::forward<Args>(args)..., " [", file, ":", line, "]"));
}

}  // namespace terse::detail

// TERSE_THROW(InvalidArgument, "lr must be > 0, got ", lr, "; pass a positive value")
#define TERSE_THROW(ExcType, ...) \
  ::terse::detail::throw_error<::terse::ExcType>(__FILE__, __LINE__, __VA_ARGS__)

// TERSE_CHECK(lr > 0, InvalidArgument, "lr must be > 0, got ", lr, "; ...")
// Input validation, always on (never compiled out like assert).
#define TERSE_CHECK(cond, ExcType, ...) \
  do {                                  \
    if (!(cond)) {                      \
      TERSE_THROW(ExcType, __VA_ARGS__); \
    }                                   \
  } while (false)

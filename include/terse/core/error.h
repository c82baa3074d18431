#pragma once

#include <stdexcept>
#include <string>

namespace terse {

// Every error terse raises derives from Error. Messages say what was wrong, the value seen and
// what to do; the location is appended by TERSE_CHECK / TERSE_THROW.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A caller passed something out of range or malformed: flags, options, shapes, dtypes.
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// A collective or transport failed (MPI or NCCL error, peer disagreement).
class CommError : public Error {
 public:
  using Error::Error;
};

// A CUDA runtime or driver call failed.
class CudaError : public Error {
 public:
  using Error::Error;
};

// A blocking wait ran past its deadline; the message names the ranks that were waited for.
class Timeout : public Error {
 public:
  using Error::Error;
};

// Data that crossed a process boundary (payload, checkpoint, dataset file) failed validation.
class CorruptData : public Error {
 public:
  using Error::Error;
};

// Training diverged (NaN or Inf loss or gradients); the last good checkpoint is kept.
class NumericalError : public Error {
 public:
  using Error::Error;
};

}  // namespace terse

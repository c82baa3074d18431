#pragma once

#include <chrono>

namespace terse {

// Handle of an asynchronous collective. The buffers it was given must stay alive and untouched
// until wait() returns or test() returns true.
class Work {
 public:
  virtual ~Work() = default;
  // Drives progress; true once the operation has completed. Throws CommError on failure.
  virtual bool test() = 0;
  // Blocks until completion. Throws Timeout after `timeout`, naming the operation, the ranks it
  // waited for and the elapsed time; CommError on failure.
  virtual void wait(std::chrono::milliseconds timeout) = 0;
  // wait() with the communicator's timeout at the time the operation was started.
  virtual void wait() = 0;
};

}  // namespace terse

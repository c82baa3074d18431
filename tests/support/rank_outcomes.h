#pragma once

// Running a function on every rank of a threads-as-ranks world and keeping what each rank threw
// (run_local_ranks keeps only the first exception; the tests of errors that every rank must
// report need all of them).

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "terse/comm/communicator.h"
#include "terse/comm/local_communicator.h"
#include "terse/core/error.h"

namespace terse::test_support {

// What one rank threw: "" when it returned, else the type and the message.
struct Outcome {
  std::string type;
  std::string what;
};

// Runs fn on every rank of `comms`, one thread each, and returns each rank's outcome.
inline std::vector<Outcome> run_on(std::vector<std::unique_ptr<Communicator>>& comms,
                                   const std::function<void(Communicator&)>& fn) {
  std::vector<Outcome> outcomes(comms.size());
  std::vector<std::thread> threads;
  for (size_t r = 0; r < comms.size(); ++r) {
    threads.emplace_back([&, r] {
      Outcome& o = outcomes[r];
      try {
        fn(*comms[r]);
      } catch (const CorruptData& e) {
        o = {"CorruptData", e.what()};
      } catch (const InvalidArgument& e) {
        o = {"InvalidArgument", e.what()};
      } catch (const CommError& e) {
        o = {"CommError", e.what()};
      } catch (const NumericalError& e) {
        o = {"NumericalError", e.what()};
      } catch (const Timeout& e) {
        o = {"Timeout", e.what()};
      } catch (const std::exception& e) {
        o = {"other", e.what()};
      }
    });
  }
  for (auto& t : threads) t.join();
  return outcomes;
}

// run_on over a fresh local world whose ranks time out after `timeout`.
inline std::vector<Outcome> run_each(int world, std::chrono::milliseconds timeout,
                                     const std::function<void(Communicator&)>& fn) {
  auto locals = make_local_communicators(world);
  std::vector<std::unique_ptr<Communicator>> comms;
  for (auto& l : locals) {
    l->set_timeout(timeout);
    comms.push_back(std::move(l));
  }
  return run_on(comms, fn);
}

}  // namespace terse::test_support

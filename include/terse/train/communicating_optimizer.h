#pragma once

#include <memory>
#include <string>
#include <vector>

#include "terse/comm/communicator.h"
#include "terse/optim/optimizer.h"
#include "terse/train/comm_stats.h"

namespace terse {

// An optimizer that talks to the communicator itself (1-bit Adam's compression phase): on some
// steps it reads each rank's LOCAL gradient and averages what it needs (the momentum) inside
// step(), with a compressed collective. Every rank must call step() the same number of times.
// The trainer asks before each step whether the gradients must be averaged densely first
// (DataParallel::set_exchange_enabled(wants_averaged_gradients())).
class CommunicatingOptimizer : public Optimizer {
 public:
  // Whether the NEXT step() expects gradients already averaged over ranks (dense all-reduce
  // by DataParallel: the warm-up, or 0/1 Adam's variance-update steps); otherwise it reads each
  // rank's local gradient and communicates itself inside step().
  virtual bool wants_averaged_gradients() const = 0;
  // What the last step() sent (measured payload bytes, ring-model bytes, bytes a dense fp32
  // all-reduce of the same elements would have sent, time); all zero after a step that sent
  // nothing (a warm-up step) and before the first step.
  virtual CommStats last_step_comm() const = 0;

 protected:
  CommunicatingOptimizer() = default;
};

// The optimizers that talk to the communicator themselves ("onebit_adam", "zero_one_adam",
// "onebit_lamb"); nullptr for any other name. Throws InvalidArgument for a bad option (naming it,
// the value and the valid range) and as make_optimizer does for bad parameters. Collective in the
// sense that every rank must build it with the same options and parameter sizes.
std::unique_ptr<CommunicatingOptimizer> make_communicating_optimizer(
    Communicator& comm, const OptimizerSpec& spec, std::vector<ParamGroup> groups);
bool is_communicating_optimizer(const std::string& name);

}  // namespace terse

#include "terse/train/communicating_optimizer.h"

#include "terse/train/one_bit_adam.h"
#include "terse/train/one_bit_lamb.h"
#include "terse/train/zero_one_adam.h"

namespace terse {

bool is_communicating_optimizer(const std::string& name) {
  return name == "onebit_adam" || name == "zero_one_adam" || name == "onebit_lamb";
}

std::unique_ptr<CommunicatingOptimizer> make_communicating_optimizer(
    Communicator& comm, const OptimizerSpec& spec, std::vector<ParamGroup> groups) {
  if (spec.name == "onebit_adam") {
    return std::make_unique<OneBitAdam>(comm, spec.options, std::move(groups));
  }
  if (spec.name == "zero_one_adam") {
    return std::make_unique<ZeroOneAdam>(comm, spec.options, std::move(groups));
  }
  if (spec.name == "onebit_lamb") {
    return std::make_unique<OneBitLamb>(comm, spec.options, std::move(groups));
  }
  return nullptr;
}

}  // namespace terse

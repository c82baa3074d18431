#pragma once

// Name -> factory for every element-wise optimizer (the list is optimizer_list.h). Explicit
// rather than self-registering: a static library drops object files nothing refers to.

#include <memory>
#include <string>
#include <vector>

#include "terse/optim/optimizer.h"

namespace terse::optim_detail {

using OptimizerFactory = std::unique_ptr<Optimizer> (*)(const OptionMap&, std::vector<ParamGroup>);

struct OptimizerEntry {
  const char* name;
  OptimizerFactory make;
};

const std::vector<OptimizerEntry>& optimizer_registry();
// Throws InvalidArgument for an unknown name, listing the known ones.
const OptimizerEntry& find_optimizer(const std::string& name);

}  // namespace terse::optim_detail

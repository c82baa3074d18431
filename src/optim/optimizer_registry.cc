#include "optimizer_registry.h"

#include "option_values.h"
#include "terse/core/check.h"

namespace terse::optim_detail {

// Each make_<id> is defined in src/optim/<id>.cc (make_adamw in adam.cc: one Rule for both).
#define TERSE_OPTIMIZER(id) \
  std::unique_ptr<Optimizer> make_##id(const OptionMap& options, std::vector<ParamGroup> groups);
#include "optimizer_list.h"
#undef TERSE_OPTIMIZER

const std::vector<OptimizerEntry>& optimizer_registry() {
#define TERSE_OPTIMIZER(id) {#id, &make_##id},
  static const std::vector<OptimizerEntry> kEntries = {
#include "optimizer_list.h"
  };
#undef TERSE_OPTIMIZER
  return kEntries;
}

const OptimizerEntry& find_optimizer(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& e : optimizer_registry()) {
    if (name == e.name) return e;
    names.push_back(e.name);
  }
  TERSE_THROW(InvalidArgument, "unknown optimizer '", name,
              "'; known optimizers are: ", join(names, ", "),
              " (write e.g. --optimizer adamw:lr=1e-3)");
}

}  // namespace terse::optim_detail

#include "terse/optim/optimizer.h"

#include "optimizer_registry.h"
#include "option_values.h"
#include "terse/core/check.h"

namespace terse {

using optim_detail::trim;

OptimizerSpec OptimizerSpec::parse(const std::string& text) {
  OptimizerSpec spec;
  const auto colon = text.find(':');
  spec.name = trim(text.substr(0, colon));
  TERSE_CHECK(!spec.name.empty(), InvalidArgument, "optimizer spec '", text,
              "' has no optimizer name; write name:key=value,... e.g. sgd:lr=0.1,momentum=0.9");
  if (colon == std::string::npos) return spec;
  const std::string rest = text.substr(colon + 1);
  if (trim(rest).empty()) return spec;
  size_t pos = 0;
  while (pos <= rest.size()) {
    const auto comma = rest.find(',', pos);
    const std::string item = rest.substr(pos, comma == std::string::npos ? comma : comma - pos);
    const auto eq = item.find('=');
    TERSE_CHECK(eq != std::string::npos, InvalidArgument, "optimizer spec '", text, "': option '",
                item, "' has no '='; write key=value, e.g. lr=1e-3 (betas as 0.9/0.999)");
    const std::string key = trim(item.substr(0, eq));
    const std::string value = trim(item.substr(eq + 1));
    TERSE_CHECK(!key.empty() && !value.empty(), InvalidArgument, "optimizer spec '", text,
                "': option '", item, "' needs both a key and a value, e.g. lr=1e-3");
    TERSE_CHECK(spec.options.emplace(key, value).second, InvalidArgument, "optimizer spec '", text,
                "' sets '", key, "' twice; give each option once");
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return spec;
}

std::string OptimizerSpec::str() const {
  std::string s = name;
  const char* sep = ":";
  for (const auto& [k, v] : options) {
    s += sep + k + "=" + v;
    sep = ",";
  }
  return s;
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerSpec& spec,
                                          std::vector<ParamGroup> groups) {
  return optim_detail::find_optimizer(spec.name).make(spec.options, std::move(groups));
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& spec, std::vector<Param> params) {
  std::vector<ParamGroup> groups(1);
  groups[0].params = std::move(params);
  return make_optimizer(OptimizerSpec::parse(spec), std::move(groups));
}

std::vector<std::string> optimizer_names() {
  std::vector<std::string> names;
  for (const auto& e : optim_detail::optimizer_registry()) names.push_back(e.name);
  return names;
}

}  // namespace terse

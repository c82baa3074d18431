#include "group_options.h"

#include <cmath>

#include "option_values.h"
#include "terse/core/check.h"

namespace terse::optim_detail {

GroupOptions::GroupOptions(const char* optimizer, const std::vector<OptionDef>& defs,
                           const OptionMap& given, size_t group)
    : who_(std::string(optimizer) + " (group " + std::to_string(group) + ")") {
  std::vector<std::string> names;
  for (const auto& d : defs) names.push_back(d.name);
  for (const auto& [key, value] : given) {
    bool known = false;
    for (const auto& d : defs) known = known || key == d.name;
    TERSE_CHECK(known, InvalidArgument, who_, ": unknown option '", key, "' (= '", value,
                "'); valid options for ", optimizer, " are: ", join(names, ", "));
  }
  for (const auto& d : defs) {
    const auto it = given.find(d.name);
    const std::string text = it == given.end() ? d.default_value : it->second;
    const std::string what = who_ + " option '" + d.name + "'";
    if (d.type == OptionType::kPair) {
      pairs_[d.name] = parse_pair(what, text);
    } else if (d.type == OptionType::kTriple) {
      triples_[d.name] = parse_triple(what, text);
    } else if (d.type == OptionType::kBool) {
      flags_[d.name] = parse_bool(what, text);
    } else {
      numbers_[d.name] = parse_double(what, text);
    }
  }
}

double GroupOptions::lr() const {
  const double lr = number("lr");
  TERSE_CHECK(std::isfinite(lr) && lr >= 0, InvalidArgument, who_, ": lr must be a finite ",
              "number >= 0, got ", lr, "; pass e.g. lr=1e-3");
  return lr;
}

double GroupOptions::weight_decay() const {
  const double wd = number("weight_decay");
  TERSE_CHECK(std::isfinite(wd) && wd >= 0, InvalidArgument, who_,
              ": weight_decay must be a finite number >= 0, got ", wd);
  return wd;
}

double GroupOptions::positive(const std::string& name, const char* advice) const {
  const double v = number(name);
  TERSE_CHECK(std::isfinite(v) && v > 0, InvalidArgument, who_, ": ", name,
              " must be a finite number > 0, got ", v, "; ", advice);
  return v;
}

std::pair<double, double> GroupOptions::betas() const {
  const auto [b1, b2] = pair("betas");
  TERSE_CHECK(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1, InvalidArgument, who_,
              ": betas must each be in [0, 1), got ", b1, "/", b2, "; 0.9/0.999 is usual");
  return {b1, b2};
}

}  // namespace terse::optim_detail

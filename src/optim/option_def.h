#pragma once

// One option an optimizer accepts: its name, how its text is parsed and the default (the
// reference implementation's), as text so options() can print it unchanged.

#include <map>
#include <string>
#include <vector>

namespace terse::optim_detail {

enum class OptionType { kDouble, kBool, kPair, kTriple };  // kTriple: "a/b/c" (Adan's betas)

struct OptionDef {
  const char* name;
  OptionType type;
  const char* default_value;  // torch's or the official code's default
};

// An option whose value is one of a few words ("block", "sign_sgd").
struct WordOptionDef {
  const char* name;
  const char* default_value;
  std::vector<std::string> allowed;
};

using WordOptions = std::map<std::string, std::string>;

// Def::options() built once, for the optimizers made from a definition `Def` (FusedOptimizer,
// ProjectedOptimizer, EightBitOptimizer), whose bases keep a reference to the table.
template <typename Def>
const std::vector<OptionDef>& def_options() {
  static const std::vector<OptionDef> kDefs = Def::options();
  return kDefs;
}

}  // namespace terse::optim_detail

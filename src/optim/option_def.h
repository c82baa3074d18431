#pragma once

// One option an element-wise optimizer accepts: its name, how its text is parsed and the
// default (the reference implementation's), as text so options() can print it unchanged.

namespace terse::optim_detail {

enum class OptionType { kDouble, kBool, kPair, kTriple };  // kTriple: "a/b/c" (Adan's betas)

struct OptionDef {
  const char* name;
  OptionType type;
  const char* default_value;  // torch's or the official code's default
};

}  // namespace terse::optim_detail

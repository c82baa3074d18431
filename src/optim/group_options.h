#pragma once

// The options of one parameter group, parsed against an optimizer's OptionDefs: unknown names
// are rejected (listing the valid ones), every value is parsed in definition order, defaults
// fill the rest. Each optimizer's parse() then reads typed values and checks their ranges.

#include <array>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "option_def.h"
#include "terse/optim/optimizer.h"

namespace terse::optim_detail {

class GroupOptions {
 public:
  // Throws InvalidArgument for an unknown option or a value that does not parse.
  GroupOptions(const char* optimizer, const std::vector<OptionDef>& defs, const OptionMap& given,
               size_t group);

  // "adam (group 0)": the prefix of every range message.
  const std::string& who() const { return who_; }
  double number(const std::string& name) const { return numbers_.at(name); }
  bool flag(const std::string& name) const { return flags_.at(name); }
  std::pair<double, double> pair(const std::string& name) const { return pairs_.at(name); }
  std::array<double, 3> triple(const std::string& name) const { return triples_.at(name); }

  // The checks shared by every optimizer; the messages are the same for all of them.
  double lr() const;            // finite, >= 0
  double weight_decay() const;  // finite, >= 0
  // Option `name`, which must be finite and > 0 (eps-like: it divides or sits under a root);
  // the error ends with `advice` ("1e-8 is usual").
  double positive(const std::string& name, const char* advice) const;
  // "betas", each in [0, 1) (Adam's range; the message suggests 0.9/0.999).
  std::pair<double, double> betas() const;

 private:
  std::string who_;
  std::map<std::string, double> numbers_;
  std::map<std::string, bool> flags_;
  std::map<std::string, std::pair<double, double>> pairs_;
  std::map<std::string, std::array<double, 3>> triples_;
};

}  // namespace terse::optim_detail

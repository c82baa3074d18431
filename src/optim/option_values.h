#pragma once

// Parsing and printing of optimizer and schedule option values ("1e-3", "true", "0.9/0.999").
// Shared by the optimizers and the learning-rate schedules; internal to terse_optim.

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace terse::optim_detail {

// `what` names the value in messages, e.g. "adamw option 'lr'".
double parse_double(const std::string& what, const std::string& text);
int64_t parse_int(const std::string& what, const std::string& text);
bool parse_bool(const std::string& what, const std::string& text);
std::pair<double, double> parse_pair(const std::string& what, const std::string& text);
std::array<double, 3> parse_triple(const std::string& what, const std::string& text);

// Shortest text that parses back to exactly `v` ("0.001", "0.9", "1e-08").
std::string format_double(double v);
std::string join(const std::vector<std::string>& items, const char* sep);
std::string trim(const std::string& s);

}  // namespace terse::optim_detail

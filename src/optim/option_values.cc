#include "option_values.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "terse/core/check.h"

namespace terse::optim_detail {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\n\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\n\r");
  return s.substr(b, e - b + 1);
}

double parse_double(const std::string& what, const std::string& text) {
  const std::string t = trim(text);
  char* end = nullptr;
  errno = 0;
  const double v = t.empty() ? 0.0 : std::strtod(t.c_str(), &end);
  TERSE_CHECK(!t.empty() && end == t.c_str() + t.size() && errno != ERANGE, InvalidArgument, what,
              " = '", text, "' is not a number; write a decimal such as 0.9 or 1e-3");
  return v;
}

int64_t parse_int(const std::string& what, const std::string& text) {
  const std::string t = trim(text);
  char* end = nullptr;
  errno = 0;
  const long long v = t.empty() ? 0 : std::strtoll(t.c_str(), &end, 10);
  TERSE_CHECK(!t.empty() && end == t.c_str() + t.size() && errno != ERANGE, InvalidArgument, what,
              " = '", text, "' is not an integer; write a whole number such as 100");
  return static_cast<int64_t>(v);
}

bool parse_bool(const std::string& what, const std::string& text) {
  const std::string t = trim(text);
  if (t == "true" || t == "True" || t == "1") return true;
  if (t == "false" || t == "False" || t == "0") return false;
  TERSE_THROW(InvalidArgument, what, " = '", text, "' is not a boolean; write true or false");
}

std::pair<double, double> parse_pair(const std::string& what, const std::string& text) {
  const auto slash = text.find('/');
  TERSE_CHECK(slash != std::string::npos && text.find('/', slash + 1) == std::string::npos,
              InvalidArgument, what, " = '", text,
              "' must be two numbers written a/b, e.g. betas=0.9/0.999");
  return {parse_double(what, text.substr(0, slash)), parse_double(what, text.substr(slash + 1))};
}

std::array<double, 3> parse_triple(const std::string& what, const std::string& text) {
  const auto a = text.find('/');
  const auto b = a == std::string::npos ? a : text.find('/', a + 1);
  TERSE_CHECK(b != std::string::npos && text.find('/', b + 1) == std::string::npos, InvalidArgument,
              what, " = '", text,
              "' must be three numbers written a/b/c, e.g. betas=0.98/0.92/0.99");
  return {parse_double(what, text.substr(0, a)), parse_double(what, text.substr(a + 1, b - a - 1)),
          parse_double(what, text.substr(b + 1))};
}

std::string format_double(double v) {
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

}  // namespace terse::optim_detail

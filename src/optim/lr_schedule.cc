#include "terse/optim/lr_schedule.h"

#include <cmath>
#include <map>

#include "option_values.h"
#include "terse/core/check.h"

namespace terse {

using optim_detail::format_double;
using optim_detail::parse_double;
using optim_detail::parse_int;
using optim_detail::trim;

namespace {
constexpr double kPi = 3.14159265358979323846;
}  // namespace

double LrSchedule::factor(int64_t step) const {
  TERSE_CHECK(step >= 0, InvalidArgument, "LrSchedule::factor: step must be >= 0 (completed ",
              "steps), got ", step);
  if (step < warmup_) return static_cast<double>(step + 1) / static_cast<double>(warmup_);
  const int64_t s = step - warmup_;
  switch (kind_) {
    case Kind::kConstant:
      return 1.0;
    case Kind::kStep:
      return std::pow(gamma_, static_cast<double>(s / step_size_));
    case Kind::kCosine: {
      const int64_t span = total_ - warmup_;
      // Past the planned end the factor stays at its floor (min_factor), as documented.
      const double progress = s >= span ? 1.0 : static_cast<double>(s) / static_cast<double>(span);
      return min_factor_ + (1.0 - min_factor_) * 0.5 * (1.0 + std::cos(kPi * progress));
    }
  }
  return 1.0;
}

std::string LrSchedule::str() const {
  std::string s;
  switch (kind_) {
    case Kind::kConstant:
      s = "constant";
      break;
    case Kind::kStep:
      s = "step:step_size=" + std::to_string(step_size_) + ",gamma=" + format_double(gamma_);
      break;
    case Kind::kCosine:
      s = "cosine:min_factor=" + format_double(min_factor_);
      break;
  }
  if (warmup_ > 0)
    s += std::string(kind_ == Kind::kConstant ? ":" : ",") + "warmup=" + std::to_string(warmup_);
  return s;
}

LrSchedule make_lr_schedule(const std::string& spec, int64_t total_steps) {
  const auto colon = spec.find(':');
  const std::string name = trim(spec.substr(0, colon));
  std::map<std::string, std::string> opts;
  if (colon != std::string::npos) {
    const std::string rest = spec.substr(colon + 1);
    size_t pos = 0;
    while (!trim(rest).empty()) {
      const auto comma = rest.find(',', pos);
      const std::string item = rest.substr(pos, comma == std::string::npos ? comma : comma - pos);
      const auto eq = item.find('=');
      TERSE_CHECK(eq != std::string::npos && !trim(item.substr(0, eq)).empty(), InvalidArgument,
                  "lr schedule '", spec, "': '", item,
                  "' is not key=value; e.g. cosine:warmup=100");
      TERSE_CHECK(opts.emplace(trim(item.substr(0, eq)), trim(item.substr(eq + 1))).second,
                  InvalidArgument, "lr schedule '", spec, "' sets '", trim(item.substr(0, eq)),
                  "' twice; give each key once");
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
  }
  LrSchedule s;
  std::string valid;
  if (name == "constant") {
    s.kind_ = LrSchedule::Kind::kConstant;
    valid = "warmup";
  } else if (name == "step") {
    s.kind_ = LrSchedule::Kind::kStep;
    valid = "step_size, gamma, warmup";
  } else if (name == "cosine") {
    s.kind_ = LrSchedule::Kind::kCosine;
    valid = "min_factor, warmup";
  } else {
    TERSE_THROW(InvalidArgument, "unknown lr schedule '", name, "' in '", spec,
                "'; valid schedules are: constant, step:step_size=N[,gamma=G], ",
                "cosine[:min_factor=F] (each may add warmup=W)");
  }
  for (const auto& [key, value] : opts) {
    const std::string what = "lr schedule '" + spec + "' key '" + key + "'";
    if (key == "warmup") {
      s.warmup_ = parse_int(what, value);
      TERSE_CHECK(s.warmup_ >= 0, InvalidArgument, what, ": warm-up steps must be >= 0, got ",
                  s.warmup_);
    } else if (key == "step_size" && s.kind_ == LrSchedule::Kind::kStep) {
      s.step_size_ = parse_int(what, value);
      TERSE_CHECK(s.step_size_ >= 1, InvalidArgument, what, ": step_size must be >= 1, got ",
                  s.step_size_);
    } else if (key == "gamma" && s.kind_ == LrSchedule::Kind::kStep) {
      s.gamma_ = parse_double(what, value);
      TERSE_CHECK(std::isfinite(s.gamma_) && s.gamma_ > 0, InvalidArgument, what,
                  ": gamma must be a finite number > 0, got ", s.gamma_, "; 0.1 is usual");
    } else if (key == "min_factor" && s.kind_ == LrSchedule::Kind::kCosine) {
      s.min_factor_ = parse_double(what, value);
      TERSE_CHECK(s.min_factor_ >= 0 && s.min_factor_ <= 1, InvalidArgument, what,
                  ": min_factor must be in [0, 1], got ", s.min_factor_);
    } else {
      TERSE_THROW(InvalidArgument, "lr schedule '", spec, "': unknown key '", key, "' for '", name,
                  "'; valid keys are: ", valid);
    }
  }
  TERSE_CHECK(s.kind_ != LrSchedule::Kind::kStep || s.step_size_ >= 1, InvalidArgument,
              "lr schedule '", spec, "' needs step_size=N (steps between decays), e.g. ",
              "step:step_size=1000,gamma=0.1");
  s.total_ = total_steps;
  TERSE_CHECK(s.kind_ != LrSchedule::Kind::kCosine || total_steps > s.warmup_, InvalidArgument,
              "lr schedule '", spec, "': cosine needs total steps > warm-up steps, got total ",
              total_steps, " and warmup ", s.warmup_, "; train longer or shorten warmup");
  return s;
}

}  // namespace terse

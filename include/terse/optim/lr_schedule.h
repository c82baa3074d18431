#pragma once

#include <cstdint>
#include <string>

namespace terse {

// A learning-rate schedule as a multiplier of the base lr: before step s + 1 (s = number of
// completed steps, 0-based) the trainer sets lr = base_lr * factor(s), e.g. with
// Optimizer::scale_lr(schedule.factor(s)).
//
// Specs (make_lr_schedule):
//   "constant"                           factor 1
//   "step:step_size=N[,gamma=G]"         gamma^floor(s / N), gamma defaults to 0.1 (torch StepLR)
//   "cosine[:min_factor=F]"              F + (1 - F) * (1 + cos(pi * s / T)) / 2, F defaults to 0;
//                                        stays at F for s >= T (T = total steps)
// Each takes "warmup=W" too (e.g. "cosine:warmup=100"): factor (s + 1) / W for s < W, i.e. from
// 1/W up to 1, then the schedule above run on s - W (cosine over T - W steps).
class LrSchedule {
 public:
  enum class Kind { kConstant, kStep, kCosine };

  LrSchedule() = default;  // constant, no warm-up
  // Throws InvalidArgument for step < 0.
  double factor(int64_t step) const;
  // The normalised spec, e.g. "cosine:min_factor=0,warmup=100".
  std::string str() const;

  Kind kind() const { return kind_; }
  int64_t warmup_steps() const { return warmup_; }
  int64_t total_steps() const { return total_; }

 private:
  friend LrSchedule make_lr_schedule(const std::string& spec, int64_t total_steps);

  Kind kind_ = Kind::kConstant;
  int64_t warmup_ = 0;
  int64_t total_ = 0;
  int64_t step_size_ = 0;
  double gamma_ = 0.1;
  double min_factor_ = 0;
};

// Parses a schedule spec. total_steps is the length of training (cosine needs it > warm-up;
// the others ignore it). Throws InvalidArgument naming the bad key or value and the valid ones.
LrSchedule make_lr_schedule(const std::string& spec, int64_t total_steps);

}  // namespace terse

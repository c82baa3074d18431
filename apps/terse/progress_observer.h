#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include "fault_injection.h"
#include "terse/torch/train_config.h"

namespace terse::cli {

// "512 B", "1.50 KiB", "2.25 MiB", "3.00 GiB".
std::string format_bytes(uint64_t bytes);
// "0.42 s", "12.3 s", "2:05", "1:02:03".
std::string format_duration(double seconds);

// The CLI's TrainObserver. On rank 0 it draws progress on `out` (stderr): on a terminal a bar
// redrawn in place with \r, otherwise one line per ~10% of an epoch; after each epoch a line with
// the test metrics. On every rank it applies the test-only fault injection.
class ProgressObserver : public torch_adapter::TrainObserver {
 public:
  ProgressObserver(int rank, bool quiet, bool tty, std::ostream& out,
                   std::optional<FaultInjection> fault);

  void on_start(const torch_adapter::TrainConfig& config, int64_t steps_per_epoch,
                int world_size) override;
  void on_step(const torch_adapter::StepMetrics& step) override;
  void on_epoch(const torch_adapter::EpochMetrics& epoch) override;

 private:
  using Clock = std::chrono::steady_clock;
  bool printing() const { return rank_ == 0 && !quiet_; }
  std::string progress_text(const torch_adapter::StepMetrics& step) const;

  int rank_;
  bool quiet_;
  bool tty_;
  std::ostream& out_;
  std::optional<FaultInjection> fault_;

  int epochs_ = 0;
  int64_t steps_per_epoch_ = 0;
  Clock::time_point start_time_;
  int64_t start_step_ = -1;  // global step before the first one seen (non-zero on resume)
  Clock::time_point last_draw_;
  int decile_epoch_ = 0;   // non-TTY: the epoch last_decile_ counts in
  int last_decile_ = 0;    // non-TTY: last 10% mark printed in that epoch
  bool bar_open_ = false;  // TTY: a bar is on the current line
  size_t bar_width_ = 0;   // TTY: length of the last bar, to blank leftovers
};

// The end-of-run table (always printed on rank 0, --quiet or not).
void print_summary(std::ostream& out, const torch_adapter::TrainConfig& config,
                   const torch_adapter::TrainSummary& summary);

}  // namespace terse::cli

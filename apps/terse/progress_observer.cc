#include "progress_observer.h"

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <string>

namespace terse::cli {
namespace {

using torch_adapter::EpochMetrics;
using torch_adapter::StepMetrics;
using torch_adapter::TrainConfig;
using torch_adapter::TrainSummary;

constexpr int kBarCells = 24;
// Terminal redraws are throttled; a fast model would otherwise spend its time printing.
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);

// printf into a std::string; the attribute lets -Wformat check every call.
__attribute__((format(printf, 1, 2))) std::string sformat(const char* fmt, ...) {
  char buffer[256];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buffer, sizeof buffer, fmt, args);
  va_end(args);
  return buffer;
}

}  // namespace

std::string format_bytes(uint64_t bytes) {
  if (bytes < 1024) return sformat("%" PRIu64 " B", bytes);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes) / 1024.0;
  size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < sizeof units / sizeof units[0]) {
    value /= 1024.0;
    ++unit;
  }
  return sformat("%.2f %s", value, units[unit]);
}

std::string format_duration(double seconds) {
  if (!(seconds >= 0)) return "?";
  if (seconds < 10) return sformat("%.2f s", seconds);
  if (seconds < 60) return sformat("%.1f s", seconds);
  const auto total = static_cast<int64_t>(seconds + 0.5);
  const int64_t h = total / 3600, m = (total / 60) % 60, s = total % 60;
  if (h > 0) return sformat("%" PRId64 ":%02" PRId64 ":%02" PRId64, h, m, s);
  return sformat("%" PRId64 ":%02" PRId64, m, s);
}

ProgressObserver::ProgressObserver(int rank, bool quiet, bool tty, std::ostream& out,
                                   std::optional<FaultInjection> fault)
    : rank_(rank), quiet_(quiet), tty_(tty), out_(out), fault_(fault) {}

void ProgressObserver::on_start(const TrainConfig& config, int64_t steps_per_epoch,
                                int world_size) {
  epochs_ = config.epochs;
  steps_per_epoch_ = steps_per_epoch;
  start_time_ = Clock::now();
  start_step_ = -1;
  if (printing()) {
    out_ << "terse: training " << config.model << " with " << config.optimizer << " on "
         << world_size << (world_size == 1 ? " rank" : " ranks") << ", " << config.epochs
         << (config.epochs == 1 ? " epoch" : " epochs") << " of " << steps_per_epoch
         << " steps (batch " << config.batch_size << " per rank)\n"
         << std::flush;
  }
}

std::string ProgressObserver::progress_text(const StepMetrics& step) const {
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_time_).count();
  const auto done = static_cast<double>(step.step - start_step_);
  const double rate = elapsed > 0 ? done / elapsed : 0;
  const int64_t total_steps = static_cast<int64_t>(epochs_) * steps_per_epoch_;
  const double eta = rate > 0 ? static_cast<double>(total_steps - step.step) / rate : -1;
  std::string text = sformat("epoch %d/%d ", step.epoch, epochs_);
  if (tty_) {
    const int64_t per_epoch = std::max<int64_t>(step.steps_per_epoch, 1);
    const auto filled = static_cast<int>(step.step_in_epoch * kBarCells / per_epoch);
    text += "[" + std::string(static_cast<size_t>(filled), '=') +
            std::string(static_cast<size_t>(kBarCells - filled), ' ') + "] ";
  }
  text +=
      sformat("step %" PRId64 "/%" PRId64 "  loss %.4f  %.1f steps/s  ETA %s", step.step_in_epoch,
              step.steps_per_epoch, step.loss, rate, format_duration(eta).c_str());
  return text;
}

void ProgressObserver::on_step(const StepMetrics& step) {
  if (fault_) fault_->apply(rank_, step.step);
  if (start_step_ < 0) start_step_ = step.step - 1;
  if (!printing() || step.steps_per_epoch <= 0) return;
  const bool last_in_epoch = step.step_in_epoch >= step.steps_per_epoch;
  if (tty_) {
    const auto now = Clock::now();
    if (!last_in_epoch && bar_open_ && now - last_draw_ < kRedrawInterval) return;
    last_draw_ = now;
    const std::string text = progress_text(step);
    const size_t pad = bar_width_ > text.size() ? bar_width_ - text.size() : 0;
    out_ << '\r' << text << std::string(pad, ' ') << std::flush;
    bar_width_ = text.size();
    bar_open_ = true;
    return;
  }
  const auto decile = static_cast<int>(step.step_in_epoch * 10 / step.steps_per_epoch);
  if (step.epoch != decile_epoch_) {  // a new epoch counts its marks from 0 again
    decile_epoch_ = step.epoch;
    last_decile_ = 0;
  }
  if (decile > last_decile_) {
    last_decile_ = decile;
    out_ << progress_text(step) << '\n' << std::flush;
  }
}

void ProgressObserver::on_epoch(const EpochMetrics& epoch) {
  if (!printing()) return;
  if (bar_open_) {
    out_ << '\n';
    bar_open_ = false;
    bar_width_ = 0;
  }
  const std::string held_out =
      epoch.language_model
          ? sformat("val loss %.4f  perplexity %.3f  bits/byte %.4f  next-byte accuracy %.4f",
                    epoch.val_loss, epoch.perplexity, epoch.bits_per_byte, epoch.test_accuracy)
          : sformat("test loss %.4f  test accuracy %.4f", epoch.test_loss, epoch.test_accuracy);
  const std::string ema =
      epoch.has_ema
          ? sformat("  EMA %s %.4f", epoch.language_model ? "next-byte accuracy" : "test accuracy",
                    epoch.ema_test_accuracy)
          : std::string();
  out_ << sformat("epoch %d/%d done: train loss %.4f  %s%s  %s", epoch.epoch, epochs_,
                  epoch.train_loss, held_out.c_str(), ema.c_str(),
                  format_duration(epoch.wall_s).c_str())
       << "  sent " << format_bytes(epoch.bytes_sent) << "/rank (dense "
       << format_bytes(epoch.bytes_dense) << ")"
       << (epoch.payload_bytes > 0 && epoch.payload_bytes != epoch.payload_dense_bytes
               ? sformat("  ratio %.1fx", static_cast<double>(epoch.payload_dense_bytes) /
                                              static_cast<double>(epoch.payload_bytes))
               : std::string())
       << "\n"
       << std::flush;
}

void print_summary(std::ostream& out, const TrainConfig& config, const TrainSummary& summary) {
  auto row = [&out](const char* key, const std::string& value) {
    out << sformat("  %-33s", key) << value << '\n';
  };
  out << "terse train summary\n";
  row("model", config.model);
  row("optimizer", config.optimizer);
  row("lr schedule", config.lr_schedule);
  row("gradient exchange", summary.exchange);
  row("ranks", std::to_string(summary.world_size));
  row("device", summary.device == "cpu"
                    ? std::string("cpu")
                    : summary.device + " (all-reduce over " + summary.backend + ")");
  std::string epochs = std::to_string(summary.epochs_run);
  if (summary.resumed_from_epoch > 0) {
    epochs += " (resumed after epoch " + std::to_string(summary.resumed_from_epoch) + ")";
  }
  row("epochs", epochs);
  row("steps", std::to_string(summary.steps));
  row("parameters", std::to_string(summary.parameters));
  if (summary.language_model) {
    row("text", config.text_path);
    row("context", std::to_string(config.context) + " bytes");
    row("final validation loss", sformat("%.4f nats/byte", summary.final_val_loss));
    row("perplexity", sformat("%.3f", summary.final_perplexity));
    row("bits per byte", sformat("%.4f", summary.final_bits_per_byte));
    row("final next-byte accuracy",
        sformat("%.4f (%.2f%%)", summary.final_test_accuracy, 100.0 * summary.final_test_accuracy));
  } else {
    row("final test accuracy",
        sformat("%.4f (%.2f%%)", summary.final_test_accuracy, 100.0 * summary.final_test_accuracy));
    row("final test loss", sformat("%.4f", summary.final_test_loss));
  }
  if (summary.has_ema) {
    row("ema", config.ema);
    row(summary.language_model ? "final EMA next-byte accuracy" : "final EMA test accuracy",
        sformat("%.4f (%.2f%%)", summary.final_ema_test_accuracy,
                100.0 * summary.final_ema_test_accuracy));
    row(summary.language_model ? "final EMA validation loss" : "final EMA test loss",
        sformat("%.4f", summary.final_ema_test_loss));
  }
  row("final train loss", sformat("%.4f", summary.final_train_loss));
  row("wall time", format_duration(summary.wall_s));
  row("message bytes per rank", format_bytes(summary.payload_bytes) + " (dense fp32 " +
                                    format_bytes(summary.payload_dense_bytes) + ")");
  row("compression ratio", summary.payload_bytes > 0
                               ? sformat("%.2fx", static_cast<double>(summary.payload_dense_bytes) /
                                                      static_cast<double>(summary.payload_bytes))
                               : std::string("n/a"));
  row("wire bytes sent per rank", format_bytes(summary.bytes_sent) + " (dense all-reduce " +
                                      format_bytes(summary.bytes_dense) + ")");
  row("time compute/comm/compress/optim", format_duration(summary.time_compute_s) + " / " +
                                              format_duration(summary.time_comm_s) + " / " +
                                              format_duration(summary.time_compress_s) + " / " +
                                              format_duration(summary.time_optim_s));
  row("optimizer state memory", format_bytes(summary.optimizer_state_bytes));
  if (summary.has_ema) row("EMA memory", format_bytes(summary.ema_state_bytes));
  if (summary.compression_state_bytes > 0)
    row("compression state memory", format_bytes(summary.compression_state_bytes));
  out << std::flush;
}

}  // namespace terse::cli

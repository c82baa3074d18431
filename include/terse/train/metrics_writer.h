#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace terse {

// Writes metrics as JSON lines: one object per line, flushed per line so a crash loses at most
// the line being written and `tail -f` shows progress. Not thread-safe: one writer per file.
class MetricsWriter {
 public:
  // Truncates `path` for a fresh run; `append` (resume) keeps earlier lines. If an earlier run
  // died mid-line, appending first ends that line so the next record starts on its own line.
  // Failure to open throws InvalidArgument with the path and the errno text.
  explicit MetricsWriter(const std::string& path, bool append = false);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;
  MetricsWriter(MetricsWriter&& o) noexcept;
  MetricsWriter& operator=(MetricsWriter&& o) noexcept;

  // Writes `record` (a JSON object; NaN and Inf become null, as JSON has neither) and flushes.
  // Throws InvalidArgument when it is not an object or the write fails.
  void write(const nlohmann::json& record);

  const std::string& path() const { return path_; }
  int64_t lines_written() const { return lines_; }

  // Reads a JSON-lines file back; a line that is not a JSON object throws CorruptData naming
  // the line number. Blank lines are skipped.
  static std::vector<nlohmann::json> read(const std::string& path);

  // The file of rank `rank` when every rank writes its own (`terse train --metrics-every-rank`):
  // rank 0 keeps `path`, rank r > 0 gets ".rank<r>" before the extension (run/m.jsonl ->
  // run/m.rank3.jsonl; a name without an extension gets the suffix at its end).
  static std::string rank_path(const std::string& path, int rank);

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  int64_t lines_ = 0;
};

}  // namespace terse

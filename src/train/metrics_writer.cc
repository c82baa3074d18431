#include "terse/train/metrics_writer.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "terse/core/check.h"

namespace terse {

MetricsWriter::MetricsWriter(const std::string& path, bool append) : path_(path) {
  TERSE_CHECK(!path.empty(), InvalidArgument, "metrics path is empty; pass a file name");
  file_ = std::fopen(path.c_str(), append ? "a+b" : "wb");
  TERSE_CHECK(file_ != nullptr, InvalidArgument, "cannot open metrics file ", path, " for ",
              append ? "appending" : "writing", ": ", std::strerror(errno),
              "; check that its directory exists and is writable");
  if (append && std::fseek(file_, -1, SEEK_END) == 0) {
    const int last = std::fgetc(file_);
    if (last != EOF && last != '\n') {
      std::fseek(file_, 0, SEEK_END);
      std::fputc('\n', file_);
      std::fflush(file_);
    }
  }
}

MetricsWriter::~MetricsWriter() {
  if (file_) std::fclose(file_);
}

MetricsWriter::MetricsWriter(MetricsWriter&& o) noexcept
    : path_(std::move(o.path_)), file_(std::exchange(o.file_, nullptr)), lines_(o.lines_) {}

MetricsWriter& MetricsWriter::operator=(MetricsWriter&& o) noexcept {
  if (this != &o) {
    if (file_) std::fclose(file_);
    path_ = std::move(o.path_);
    file_ = std::exchange(o.file_, nullptr);
    lines_ = o.lines_;
  }
  return *this;
}

void MetricsWriter::write(const nlohmann::json& record) {
  TERSE_CHECK(file_ != nullptr, InvalidArgument, "MetricsWriter for ", path_,
              " was moved from; write through the object it was moved to");
  TERSE_CHECK(record.is_object(), InvalidArgument, "metrics record must be a JSON object, got ",
              record.type_name(), " ", record.dump().substr(0, 80));
  std::string line;
  try {
    line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const nlohmann::json::exception& e) {
    TERSE_THROW(InvalidArgument, "metrics record cannot be serialized: ", e.what());
  }
  line += '\n';
  // In append mode ("a") every write goes to the end, whatever the read position is.
  const bool ok =
      std::fwrite(line.data(), 1, line.size(), file_) == line.size() && std::fflush(file_) == 0;
  TERSE_CHECK(ok, InvalidArgument, "writing metrics to ", path_, " failed: ", std::strerror(errno),
              "; check free space and permissions");
  ++lines_;
}

std::vector<nlohmann::json> MetricsWriter::read(const std::string& path) {
  std::ifstream in(path);
  TERSE_CHECK(in.good(), InvalidArgument, "cannot open metrics file ", path, ": ",
              std::strerror(errno), "; check the path");
  std::vector<nlohmann::json> out;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    TERSE_CHECK(!j.is_discarded() && j.is_object(), CorruptData, "metrics file ", path, ": line ",
                n, " is not a JSON object: '", line.substr(0, 80),
                "'; the file was damaged or written by another program");
    out.push_back(std::move(j));
  }
  return out;
}

std::string MetricsWriter::rank_path(const std::string& path, int rank) {
  TERSE_CHECK(rank >= 0, InvalidArgument, "MetricsWriter::rank_path needs rank >= 0, got ", rank,
              "; pass the communicator's rank");
  if (rank == 0) return path;
  const std::filesystem::path p(path);
  std::filesystem::path out = p.parent_path() / p.stem();
  out += ".rank" + std::to_string(rank);
  out += p.extension();
  return out.string();
}

}  // namespace terse

#include "terse/train/checkpoint_store.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <system_error>
#include <utility>

#include "terse/core/check.h"
#include "terse/core/remove_tree.h"

namespace terse {
namespace {

namespace fs = std::filesystem;

constexpr const char* kLatest = "LATEST";

// Parses "epoch-<E>" with E a non-negative decimal without leading zeros; -1 otherwise.
int parse_name(const std::string& name) {
  const std::string prefix = "epoch-";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return -1;
  const std::string digits = name.substr(prefix.size());
  if (digits.size() > 9 || (digits.size() > 1 && digits[0] == '0')) return -1;
  int e = 0;
  for (char c : digits) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return -1;
    e = e * 10 + (c - '0');
  }
  return e;
}

}  // namespace

CheckpointStore::CheckpointStore(std::string dir, int keep) : dir_(std::move(dir)), keep_(keep) {
  TERSE_CHECK(!dir_.empty(), InvalidArgument,
              "CheckpointStore: empty directory; pass --checkpoint-dir");
  TERSE_CHECK(keep >= 1, InvalidArgument, "CheckpointStore: keep must be >= 1, got ", keep);
}

std::string CheckpointStore::name_of(int epoch) {
  TERSE_CHECK(epoch >= 0, InvalidArgument, "checkpoint epoch must be >= 0, got ", epoch);
  return "epoch-" + std::to_string(epoch);
}

int CheckpointStore::epoch_of(const std::string& name) {
  const int e = parse_name(name);
  TERSE_CHECK(e >= 0, InvalidArgument, "'", name,
              "' is not a checkpoint name (expected epoch-<E>, e.g. epoch-3)");
  return e;
}

std::string CheckpointStore::path_of(const std::string& name, int rank) const {
  epoch_of(name);
  TERSE_CHECK(rank >= 0, InvalidArgument, "checkpoint rank must be >= 0, got ", rank);
  return dir_ + "/" + name + "/rank-" + std::to_string(rank) + ".ckpt";
}

void CheckpointStore::save_rank(int epoch, int rank, const Checkpoint& ckpt) {
  const std::string name = name_of(epoch);
  const std::string path = path_of(name, rank);
  for (const auto& [key, value] : {std::pair<const char*, int>{"epoch", epoch}, {"rank", rank}}) {
    const auto it = ckpt.meta.find(key);
    TERSE_CHECK(it == ckpt.meta.end() || *it == value, InvalidArgument, "save_rank(epoch ", epoch,
                ", rank ", rank, "): the checkpoint's meta says ", key, " = ",
                it == ckpt.meta.end() ? "" : it->dump(), "; they must agree");
  }
  std::error_code ec;
  fs::create_directories(dir_ + "/" + name, ec);
  TERSE_CHECK(!ec, InvalidArgument, "cannot create checkpoint directory ", dir_, "/", name, ": ",
              ec.message(), "; check --checkpoint-dir and its permissions");
  save_checkpoint(path, ckpt);
}

bool CheckpointStore::is_complete(const std::string& name) const {
  std::error_code ec;
  if (!fs::is_regular_file(path_of(name, 0), ec)) return false;
  try {
    const nlohmann::json meta = read_checkpoint_meta(path_of(name, 0));
    const auto ws = meta.find("world_size");
    if (ws == meta.end() || !ws->is_number_integer() || *ws < 1) return false;
    for (int r = 1; r < ws->get<int>(); ++r) {
      if (!fs::is_regular_file(path_of(name, r), ec)) return false;
    }
    return true;
  } catch (const Error&) {
    return false;  // unreadable or damaged: not a checkpoint to keep or resume from
  }
}

void CheckpointStore::commit(int epoch) {
  const std::string name = name_of(epoch);
  const nlohmann::json meta = load_rank_meta(name, 0);
  const auto ws = meta.find("world_size");
  TERSE_CHECK(ws != meta.end() && ws->is_number_integer() && *ws >= 1 && *ws <= 1 << 20,
              InvalidArgument, "commit(epoch ", epoch, "): ", path_of(name, 0),
              " has meta world_size = ", ws == meta.end() ? "(missing)" : ws->dump(),
              "; save every rank's checkpoint with meta \"world_size\" set");
  const int world = ws->get<int>();
  std::error_code ec;
  for (int r = 1; r < world; ++r) {
    TERSE_CHECK(fs::is_regular_file(path_of(name, r), ec), InvalidArgument, "commit(epoch ", epoch,
                "): ", path_of(name, r), " is missing (", world,
                " ranks expected); every rank must call save_rank before rank 0 commits");
  }
  // Rank files from an earlier run with more ranks would make the directory ambiguous.
  for (const auto& entry : fs::directory_iterator(dir_ + "/" + name, ec)) {
    const std::string f = entry.path().filename().string();
    if (f.size() <= 10 || f.rfind("rank-", 0) != 0 || f.compare(f.size() - 5, 5, ".ckpt") != 0)
      continue;
    const std::string num = f.substr(5, f.size() - 10);
    if (num.size() < 9 &&
        std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        std::stoi(num) >= world) {
      fs::remove(entry.path(), ec);
    }
  }
  const std::string text = name + "\n";
  write_file_atomic(dir_ + "/" + kLatest, reinterpret_cast<const uint8_t*>(text.data()),
                    text.size());

  // Retention: the committed one plus the newest complete ones below it, keep_ in all.
  std::vector<int> older_complete, older_other;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const int e = parse_name(entry.path().filename().string());
    if (e < 0 || e >= epoch || !entry.is_directory(ec)) continue;
    (is_complete(name_of(e)) ? older_complete : older_other).push_back(e);
  }
  std::sort(older_complete.begin(), older_complete.end());
  const size_t keep_older = static_cast<size_t>(keep_ - 1);
  if (older_complete.size() > keep_older) {
    older_other.insert(older_other.end(), older_complete.begin(),
                       older_complete.end() - static_cast<std::ptrdiff_t>(keep_older));
  }
  for (int e : older_other) {
    std::string why;
    TERSE_CHECK(remove_tree(dir_ + "/" + name_of(e), &why), InvalidArgument,
                "cannot remove old checkpoint ", dir_, "/", name_of(e), ": ", why,
                "; check permissions of ", dir_);
  }
}

std::optional<std::string> CheckpointStore::latest() const {
  const std::string path = dir_ + "/" + kLatest;
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  const auto size = fs::file_size(path, ec);
  TERSE_CHECK(!ec && size <= 4096, CorruptData, path, " is ", ec ? 0 : size,
              " bytes (expected a short 'epoch-<E>' line); fix or delete it, or start without "
              "--resume");
  const std::vector<uint8_t> bytes = read_file(path);
  std::string text(bytes.begin(), bytes.end());
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  TERSE_CHECK(parse_name(text) >= 0, CorruptData, path, " holds '", text.substr(0, 64),
              "' (expected epoch-<E>); fix or delete it, or start without --resume");
  return text;
}

Checkpoint CheckpointStore::load_rank(const std::string& name, int rank) const {
  const std::string path = path_of(name, rank);
  std::error_code ec;
  TERSE_CHECK(fs::exists(path, ec), InvalidArgument, "checkpoint ", path,
              " not found: it was written by fewer ranks or deleted; resume with the same --np, "
              "or start without --resume");
  Checkpoint ckpt = load_checkpoint(path);
  const auto r = ckpt.meta.find("rank");
  TERSE_CHECK(r == ckpt.meta.end() || *r == rank, CorruptData, "checkpoint ", path,
              " was written by rank ", r == ckpt.meta.end() ? "" : r->dump(), " (expected ", rank,
              "); the files were moved or renamed: restore them");
  return ckpt;
}

nlohmann::json CheckpointStore::load_rank_meta(const std::string& name, int rank) const {
  const std::string path = path_of(name, rank);
  std::error_code ec;
  TERSE_CHECK(fs::exists(path, ec), InvalidArgument, "checkpoint ", path,
              " not found: it was written by fewer ranks or deleted; resume with the same --np, "
              "or start without --resume");
  return read_checkpoint_meta(path);
}

std::vector<std::string> CheckpointStore::complete() const {
  std::vector<int> epochs;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const int e = parse_name(entry.path().filename().string());
    if (e >= 0 && entry.is_directory(ec) && is_complete(name_of(e))) epochs.push_back(e);
  }
  std::sort(epochs.begin(), epochs.end());
  std::vector<std::string> names;
  for (int e : epochs) names.push_back(name_of(e));
  return names;
}

void check_compatible(const nlohmann::json& meta, const nlohmann::json& expected) {
  TERSE_CHECK(meta.is_object() && expected.is_object(), InvalidArgument,
              "check_compatible needs two JSON objects, got ", meta.type_name(), " and ",
              expected.type_name());
  for (const auto& [key, want] : expected.items()) {
    const auto it = meta.find(key);
    TERSE_CHECK(it != meta.end(), InvalidArgument, "checkpoint has no '", key,
                "' in its metadata (this run expects ", want.dump(),
                "); it was written by an older terse or another program: start without --resume");
    const nlohmann::json& got = *it;
    if (got == want) continue;
    if (key == "world_size") {
      TERSE_THROW(InvalidArgument, "checkpoint was written by ", got.dump(),
                  " ranks, this run has ", want.dump(), ": resume with the same --np (", got.dump(),
                  ") or start without --resume");
    }
    if (key == "model") {
      TERSE_THROW(InvalidArgument, "checkpoint holds model ", got.dump(), ", this run trains ",
                  want.dump(), ": resume with the same --model or start without --resume");
    }
    if (key == "optimizer") {
      TERSE_THROW(InvalidArgument, "checkpoint was written with optimizer ", got.dump(),
                  ", this run uses ", want.dump(),
                  ": resume with the same --optimizer or start without --resume");
    }
    if (key == "exchange") {
      TERSE_THROW(InvalidArgument, "checkpoint was written with gradient exchange ", got.dump(),
                  ", this run uses ", want.dump(),
                  ": resume with the same --compress and --feedback or start without --resume");
    }
    TERSE_THROW(InvalidArgument, "checkpoint has ", key, " = ", got.dump(), ", this run has ",
                want.dump(), ": resume with the same settings or start without --resume");
  }
}

}  // namespace terse

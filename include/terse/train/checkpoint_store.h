#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "terse/train/checkpoint.h"

namespace terse {

// A directory of per-rank checkpoints, one subdirectory per epoch:
//   <dir>/epoch-<E>/rank-<r>.ckpt   written by each rank (save_rank)
//   <dir>/LATEST                    "epoch-<E>": the newest complete checkpoint (commit)
// A checkpoint is complete once rank 0 has committed it after every rank saved; LATEST only
// ever names complete checkpoints, so a crash mid-epoch resumes from the previous one.
class CheckpointStore {
 public:
  static constexpr int kDefaultKeep = 2;

  // `keep` >= 1: how many complete checkpoints commit() keeps.
  explicit CheckpointStore(std::string dir, int keep = kDefaultKeep);

  // Writes this rank's file atomically (creating directories). When `ckpt.meta` has "epoch" or
  // "rank" they must equal the arguments (InvalidArgument otherwise).
  void save_rank(int epoch, int rank, const Checkpoint& ckpt);

  // Rank 0 only, after all ranks saved `epoch` (a barrier): checks that rank-0 .. rank-(N-1)
  // exist (N = meta "world_size" of rank 0's file), removes stray rank files >= N, points
  // LATEST at epoch-<E> atomically, then deletes complete checkpoints beyond the newest `keep`
  // and every older incomplete one. Throws InvalidArgument naming the missing file.
  void commit(int epoch);

  // The name in LATEST ("epoch-<E>"), or nullopt when there is no LATEST (nothing committed).
  // A LATEST that does not hold such a name throws CorruptData.
  std::optional<std::string> latest() const;

  // Loads `<dir>/<name>/rank-<rank>.ckpt`. Missing: InvalidArgument saying what to do; damaged
  // or written by another rank: CorruptData.
  Checkpoint load_rank(const std::string& name, int rank) const;
  // Only the meta of that file (see read_checkpoint_meta).
  nlohmann::json load_rank_meta(const std::string& name, int rank) const;

  // Names of complete checkpoints present in the directory, oldest first.
  std::vector<std::string> complete() const;

  const std::string& dir() const { return dir_; }
  std::string path_of(const std::string& name, int rank) const;
  static std::string name_of(int epoch);
  // The epoch of "epoch-<E>"; InvalidArgument for any other name.
  static int epoch_of(const std::string& name);

 private:
  bool is_complete(const std::string& name) const;

  std::string dir_;
  int keep_;
};

// Checks a checkpoint's meta against what this run expects, key by key, for every key of
// `expected` (typically "model", "world_size", "optimizer"). Throws InvalidArgument naming the
// key, both values and what to do, e.g. "checkpoint was written by 4 ranks, this run has 2:
// resume with the same --np".
void check_compatible(const nlohmann::json& meta, const nlohmann::json& expected);

}  // namespace terse

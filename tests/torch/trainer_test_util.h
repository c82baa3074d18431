#pragma once

// What the trainer tests share: scratch directories, a small configuration, a run over local
// ranks that records rank 0's metrics, and the deterministic part of a metrics file.

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "terse/comm/local_communicator.h"
#include "terse/core/remove_tree.h"
#include "terse/torch/trainer.h"
#include "terse/train/checkpoint_store.h"
#include "terse/train/metrics_writer.h"

namespace terse::torch_adapter::trainer_test {

namespace fs = std::filesystem;

// A fresh directory under the build tree for one test (`suite` keeps the test programs apart:
// ctest runs them at once).
inline std::string scratch(const std::string& name, const std::string& suite = "trainer") {
  const fs::path dir = fs::path(TERSE_BINARY_DIR) / "test_scratch" / suite / name;
  std::string why;
  if (!terse::remove_tree(dir.string(), &why)) throw std::runtime_error("cannot clear " + why);
  fs::create_directories(dir);
  return dir.string();
}

inline TrainConfig small_config(const std::string& model = "mlp") {
  TrainConfig c;
  c.model = model;
  c.optimizer = "sgd:lr=0.1,momentum=0.9";
  c.epochs = 2;
  c.batch_size = 64;
  c.seed = 5;
  c.train_limit = 2048;  // 16 steps per epoch with 2 ranks
  c.test_limit = 512;
  c.threads = 1;
  c.bucket_mb = 0.25;  // several buckets even for these small models
  return c;
}

struct Recorder : TrainObserver {
  std::vector<StepMetrics> steps;
  std::vector<EpochMetrics> epochs;
  std::vector<EvalMetrics> evals;
  int64_t steps_per_epoch = 0;
  void on_start(const TrainConfig&, int64_t spe, int) override { steps_per_epoch = spe; }
  void on_step(const StepMetrics& m) override { steps.push_back(m); }
  void on_eval(const EvalMetrics& m) override { evals.push_back(m); }
  void on_epoch(const EpochMetrics& m) override { epochs.push_back(m); }
};

struct RunResult {
  TrainSummary summary;
  Recorder rank0;
};

inline RunResult run(const TrainConfig& c, int world) {
  RunResult r;
  std::mutex mu;
  run_local_ranks(world, [&](Communicator& comm) {
    Recorder rec;
    const TrainSummary s = train(c, comm, &rec);
    if (comm.rank() == 0) {
      std::lock_guard<std::mutex> lock(mu);
      r.summary = s;
      r.rank0 = rec;
    }
  });
  return r;
}

// The deterministic fields of a metrics file (no timings).
inline std::vector<nlohmann::json> deterministic(const std::string& path) {
  std::vector<nlohmann::json> out;
  for (nlohmann::json j : MetricsWriter::read(path)) {
    for (const char* k : {"time_compute_s", "time_comm_s", "time_wait_s", "time_compress_s",
                          "time_optim_s", "time_step_s", "train_time_s", "wall_s"})
      j.erase(k);
    out.push_back(j);
  }
  return out;
}

inline Checkpoint load_latest(const std::string& dir, int rank = 0) {
  CheckpointStore store(dir);
  return store.load_rank(store.latest().value(), rank);
}

// `straight` (with metrics and a checkpoint directory under scratch(name + "_straight")) run
// through, and the same run stopped after its first epoch and resumed (under
// scratch(name + "_resumed")). A resumed run appends to its metrics file, so `first`'s file then
// holds the whole run.
struct ResumePair {
  TrainConfig straight, first;
  RunResult full, resumed;
};
// The schedule must not depend on --epochs (cosine spans all of them), or the first run's
// learning rates differ from the straight run's and the comparison fails for that reason alone.
inline ResumePair run_straight_and_resumed(TrainConfig straight, const std::string& name, int world,
                                           const std::string& suite = "trainer") {
  EXPECT_NE(straight.lr_schedule.rfind("cosine", 0), 0u)
      << "run_straight_and_resumed: the schedule '" << straight.lr_schedule
      << "' spans --epochs, so the first run's learning rates would differ; pass a step or "
         "constant schedule";
  ResumePair p;
  straight.metrics_path = scratch(name + "_straight", suite) + "/m.jsonl";
  straight.checkpoint_dir = scratch(name + "_straight", suite) + "/ckpt";
  p.full = run(straight, world);
  TrainConfig first = straight;
  first.epochs = 1;
  first.metrics_path = scratch(name + "_resumed", suite) + "/m.jsonl";
  first.checkpoint_dir = scratch(name + "_resumed", suite) + "/ckpt";
  run(first, world);
  TrainConfig second = first;
  second.epochs = straight.epochs;
  second.resume = true;
  p.resumed = run(second, world);
  p.straight = straight;
  p.first = first;
  return p;
}

// The resumed run equals the uninterrupted one: the same metrics records (timings aside), and
// equal `sections` in the last checkpoints of both.
inline void expect_resumed_as_straight(const ResumePair& p,
                                       const std::vector<std::string>& sections) {
  EXPECT_EQ(deterministic(p.first.metrics_path), deterministic(p.straight.metrics_path));
  const Checkpoint a = load_latest(p.straight.checkpoint_dir);
  const Checkpoint b = load_latest(p.first.checkpoint_dir);
  for (const std::string& s : sections) {
    EXPECT_TRUE(a.sections.at(s) == b.sections.at(s)) << "checkpoint section " << s;
  }
}

inline TrainConfig on_cuda(TrainConfig c) {
  c.device = "cuda";
  return c;
}

// The same run on the CPU and on the GPU: the same first loss (same weights, same batch), close
// losses throughout, the same accuracy within 2 points and the same message bytes. The GPU's
// matmuls sum in another order, so the runs agree closely, not bit for bit.
// The runs go to *cpu_out and *gpu_out where given, for further checks.
inline void expect_close_runs(const TrainConfig& c, int world, RunResult* cpu_out = nullptr,
                              RunResult* gpu_out = nullptr) {
  const RunResult cpu = run(c, world);
  const RunResult gpu = run(on_cuda(c), world);
  if (cpu_out != nullptr) *cpu_out = cpu;
  if (gpu_out != nullptr) *gpu_out = gpu;
  EXPECT_EQ(cpu.summary.device, "cpu");
  EXPECT_EQ(gpu.summary.device, "cuda:0");
  ASSERT_EQ(cpu.rank0.steps.size(), gpu.rank0.steps.size());
  ASSERT_FALSE(cpu.rank0.steps.empty());
  EXPECT_NEAR(cpu.rank0.steps[0].loss, gpu.rank0.steps[0].loss,
              1e-4 * std::abs(cpu.rank0.steps[0].loss));
  double diff = 0;
  for (size_t s = 0; s < cpu.rank0.steps.size(); ++s) {
    diff += std::abs(cpu.rank0.steps[s].loss - gpu.rank0.steps[s].loss);
    EXPECT_EQ(cpu.rank0.steps[s].payload_bytes, gpu.rank0.steps[s].payload_bytes) << "step " << s;
  }
  EXPECT_LT(diff / static_cast<double>(cpu.rank0.steps.size()), 0.02);
  EXPECT_NEAR(cpu.summary.final_test_accuracy, gpu.summary.final_test_accuracy, 0.02);
}

}  // namespace terse::torch_adapter::trainer_test
